"""Reads for the control-room pages, already limited to one workspace.

Every list here is bounded (a page, a column, a window of days) and fetches its related
rows in a fixed number of queries, whatever the size of the workspace: the page tests pin
the query counts and bench/pages.py measures them at 100,000 subtasks.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps
from django.db.models import Count, Max, Min, Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.models import Workspace
from accounts.permissions import Action, Principal, access_in, forget, visible_workspaces
from orchestration.models import (
    AgentRun,
    CaseOutcome,
    Event,
    EventKind,
    FeatureRequest,
    FeatureStatus,
    Project,
    RunStatus,
    Subtask,
    SubtaskDependency,
    SubtaskStatus,
    TestCaseResult,
    TestRun,
    TestRunStatus,
)
from orchestration.models.subtasks import allowed_transitions

# What a timeline row shows; the big text of runs (briefing, output) is never loaded here.
EVENT_ROW_FIELDS = (
    "id",
    "workspace_id",
    "kind",
    "actor",
    "message",
    "created_at",
    "data",
    "subtask__code",
    "subtask__key",
    "subtask__status",
    "feature__code",
    "feature__title",
    "feature__status",  # django-fsm reads the state field when it loads a row
    "run__code",
    "run__role",
    "run__status",
)
RUN_ROW_DEFER = ("briefing", "output", "result", "error")
BOARD_COLUMN_LIMIT = 25
# What a board card shows (and django-fsm's state fields, which it reads on load).
CARD_FIELDS = (
    "id", "code", "workspace_id", "project_id", "feature_id", "assignee_id", "key", "title",
    "status", "risk", "owner_role", "attempts", "estimate_hours", "status_changed_at",
    "feature__code", "feature__title", "feature__status", "assignee__name", "assignee__role",
)  # fmt: skip
TIMELINE_LIMIT = 40
STATES = list(SubtaskStatus)
REVIEW_TRANSITIONS = frozenset({"complete", "request_changes"})


# --- access -----------------------------------------------------------------------------


def workspace_for(user, code) -> Workspace | None:
    """The workspace with this code if `user` is a member, else None (the views' 404)."""
    return visible_workspaces(Principal(user=user)).filter(code=code).first()


def workspaces_for(user) -> QuerySet[Workspace]:
    return visible_workspaces(Principal(user=user)).order_by("name")


@dataclass(frozen=True)
class Rights:
    edit: bool
    review: bool
    admin: bool = False
    # (project id, edit, review) for each project where the user holds another role;
    # a tuple so the rights stay hashable (the live consumer caches frames by them).
    overrides: tuple[tuple[int, bool, bool], ...] = ()

    def on(self, project_id: int | None) -> Rights:
        """The rights on one project: its override if the user has one there."""
        for pid, edit, review in self.overrides:
            if pid == project_id:
                return Rights(edit=edit, review=review, admin=self.admin)
        return self


def rights_in(user, workspace_id: int) -> Rights:
    # Read afresh: a live page's consumer keeps one user object for hours, and rechecks.
    forget(user)
    access = access_in(Principal(user=user), workspace_id)
    if access is None:
        return Rights(edit=False, review=False)
    return Rights(
        edit=Action.EDIT in access.actions,
        review=Action.REVIEW in access.actions,
        admin=Action.ADMIN in access.actions,
        overrides=tuple(
            sorted(
                (pid, Action.EDIT in actions, Action.REVIEW in actions)
                for pid, actions in access.projects.items()
            )
        ),
    )


def transitions_for(subtask: Subtask, rights: Rights) -> list[str]:
    """The transitions this user may take from the subtask's state: the board's buttons."""
    rights = rights.on(subtask.project_id)
    names = allowed_transitions(subtask.status)
    return [
        name for name in names if (rights.review if name in REVIEW_TRANSITIONS else rights.edit)
    ]


# --- events -----------------------------------------------------------------------------


def event_rows(workspace_id: int) -> QuerySet[Event]:
    return (
        Event.objects.filter(workspace_id=workspace_id)
        .select_related("subtask", "feature", "run")
        .only(*EVENT_ROW_FIELDS)
    )


def timeline(
    workspace_id: int,
    *,
    limit: int = TIMELINE_LIMIT,
    subtask_id: int | None = None,
    feature_id: int | None = None,
) -> list[Event]:
    rows = event_rows(workspace_id)
    if subtask_id is not None:
        rows = rows.filter(subtask_id=subtask_id)
    if feature_id is not None:
        rows = rows.filter(feature_id=feature_id)
    return list(rows.order_by("-id")[:limit])


def events_after(workspace_id: int, after: int, *, limit: int = 200) -> list[Event]:
    """Events a page missed, oldest first: the re-sync after a reconnect or a gap."""
    rows = event_rows(workspace_id).filter(id__gt=after).order_by("id")
    return list(rows[:limit])


def last_event_id(workspace_id: int) -> int:
    return (
        Event.objects.filter(workspace_id=workspace_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
        or 0
    )


def previous_event_id(workspace_id: int, event_id: int) -> int:
    """The workspace's event before this one: a page that has not seen it missed one."""
    return (
        Event.objects.filter(workspace_id=workspace_id, id__lt=event_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
        or 0
    )


def pushed_event(workspace_id: int, event_id: int) -> Event | None:
    """One event as `event_rows` loads it, with `prev_id` (the workspace's event before it).

    The live feed reads one event per push, and with Django compiling the joined, deferred
    query each time that compilation was most of a push's render: the SQL here is built once
    per process. The related rows carry the same fields as in `event_rows`.
    """
    rows = list(Event.objects.raw(_pushed_event_sql(), [workspace_id, event_id]))
    if not rows:
        return None
    event = rows[0]
    for name, model, fields in _PUSHED_RELATED:
        if getattr(event, f"{name}_id") is None:
            continue
        values = {"id": getattr(event, f"{name}_id")}
        values.update({f: getattr(event, f"pushed_{name}_{f}") for f in fields})
        values["code"] = uuid.UUID(str(values["code"]))  # SQLite hands back text
        related = model.from_db(
            event._state.db,
            [f.attname for f in model._meta.concrete_fields if f.attname in values],
            [values[f.attname] for f in model._meta.concrete_fields if f.attname in values],
        )
        setattr(event, name, related)
    return event


_PUSHED_RELATED = (
    ("subtask", Subtask, ("code", "key", "status")),
    ("feature", FeatureRequest, ("code", "title", "status")),
    ("run", AgentRun, ("code", "role", "status")),
)


@functools.cache
def _pushed_event_sql() -> str:
    table = Event._meta.db_table
    own = ", ".join(
        f"e.{f.column}"
        for f in Event._meta.concrete_fields
        if f.attname in {"id", "workspace_id", "subtask_id", "feature_id", "run_id"}
        or f.name in EVENT_ROW_FIELDS
    )
    related, joins = [], []
    for name, model, fields in _PUSHED_RELATED:
        column = Event._meta.get_field(name).column
        joins.append(f"LEFT JOIN {model._meta.db_table} {name} ON {name}.id = e.{column}")
        related += [
            f"{name}.{model._meta.get_field(f).column} AS pushed_{name}_{f}" for f in fields
        ]
    return (
        f"SELECT {own}, {', '.join(related)}, "
        f"(SELECT p.id FROM {table} p WHERE p.workspace_id = e.workspace_id AND p.id < e.id "
        f"ORDER BY p.id DESC LIMIT 1) AS prev_id "
        f"FROM {table} e {' '.join(joins)} WHERE e.workspace_id = %s AND e.id = %s"
    )


# --- control room -----------------------------------------------------------------------


def status_counts(workspace_id: int, subtasks: QuerySet[Subtask] | None = None) -> dict[str, int]:
    rows = subtasks if subtasks is not None else Subtask.objects.filter(workspace_id=workspace_id)
    counted = dict(rows.values_list("status").annotate(n=Count("id")).order_by())
    return {state.value: counted.get(state.value, 0) for state in STATES}


def runs_in_flight(workspace_id: int, *, limit: int = 20) -> list[AgentRun]:
    return list(
        AgentRun.objects.filter(workspace_id=workspace_id, status=RunStatus.RUNNING)
        .select_related("subtask", "feature", "profile")
        .defer(*(f"{name}" for name in RUN_ROW_DEFER))
        .order_by("claimed_at")[:limit]
    )


def waiting_for_humans(workspace_id: int, *, limit: int = 20) -> list[Subtask]:
    """Escalations first (work stopped), then reviews waiting; the longest waiting first.

    One query per state: each reads the board index in order instead of sorting.
    """
    found: list[Subtask] = []
    for state in (SubtaskStatus.BLOCKED, SubtaskStatus.READY_FOR_REVIEW):
        found += (
            (
                Subtask.objects.filter(workspace_id=workspace_id, status=state)
                .select_related("project", "feature")
                .order_by("status_changed_at", "id")[: limit - len(found)]
            )
            if len(found) < limit
            else []
        )
    return found


def active_features(workspace_id: int, *, limit: int = 10) -> list[FeatureRequest]:
    """The newest features with their progress, counted for those features only."""
    newest = list(
        FeatureRequest.objects.filter(workspace_id=workspace_id)
        .exclude(status=FeatureStatus.CANCELLED)
        .order_by("-created_at")
        .values_list("id", flat=True)[:limit]
    )
    return list(
        FeatureRequest.objects.filter(id__in=newest)
        .select_related("project")
        .annotate(
            subtask_total=Count("subtasks"),
            subtask_done=Count("subtasks", filter=Q(subtasks__status=SubtaskStatus.COMPLETED)),
        )
        .order_by("-created_at")
    )


def projects(workspace_id: int) -> list[Project]:
    return list(Project.objects.filter(workspace_id=workspace_id).order_by("name"))


# --- board ------------------------------------------------------------------------------


@dataclass
class BoardFilters:
    project: str = ""
    feature: str = ""
    role: str = ""
    risk: str = ""

    @classmethod
    def from_query(cls, query) -> BoardFilters:
        return cls(
            **{name: query.get(name, "").strip() for name in ("project", "feature", "role", "risk")}
        )

    def apply(self, rows: QuerySet[Subtask]) -> QuerySet[Subtask]:
        if self.project:
            rows = rows.filter(project__code=self.project)
        if self.feature:
            rows = rows.filter(feature__code=self.feature)
        if self.role:
            rows = rows.filter(owner_role=self.role)
        if self.risk:
            rows = rows.filter(risk=self.risk)
        return rows

    @property
    def active(self) -> bool:
        return any((self.project, self.feature, self.role, self.risk))


@dataclass
class Column:
    state: str
    label: str
    total: int
    cards: list[Subtask] = field(default_factory=list)

    @property
    def more(self) -> int:
        return self.total - len(self.cards)


def board_columns(
    workspace_id: int, filters: BoardFilters, *, states: list[str] | None = None
) -> list[Column]:
    """Subtasks by state, newest change first, each column capped; with their dependencies."""
    base = filters.apply(Subtask.objects.filter(workspace_id=workspace_id))
    totals = status_counts(workspace_id, base)
    wanted = [s for s in STATES if states is None or s.value in states]
    columns = []
    for state in wanted:
        cards = list(
            base.filter(status=state.value)
            .select_related("feature", "assignee")
            .only(*CARD_FIELDS)
            .order_by("-status_changed_at", "-id")[:BOARD_COLUMN_LIMIT]
        )
        columns.append(Column(state.value, state.label, totals[state.value], cards))
    _attach_dependencies([card for column in columns for card in column.cards])
    return columns


def _attach_dependencies(cards: list[Subtask]) -> None:
    by_id = {card.pk: card for card in cards}
    for card in cards:
        card.waits_on = []
    links = SubtaskDependency.objects.filter(subtask_id__in=by_id).values_list(
        "subtask_id", "depends_on__key", "depends_on__status"
    )
    for subtask_id, key, status in links:
        by_id[subtask_id].waits_on.append((key, status))


def eta(subtask: Subtask, now: datetime | None = None) -> datetime | None:
    """When an unfinished subtask should be done: its last change plus its estimate."""
    if subtask.status == SubtaskStatus.COMPLETED or not subtask.estimate_hours:
        return None
    return subtask.status_changed_at + timedelta(hours=float(subtask.estimate_hours))


def board_choices(workspace_id: int) -> dict[str, list]:
    return {
        "projects": list(
            Project.objects.filter(workspace_id=workspace_id)
            .order_by("name")
            .values_list("code", "name")
        ),
        "features": list(
            FeatureRequest.objects.filter(workspace_id=workspace_id)
            .order_by("-created_at")
            .values_list("code", "title")[:100]
        ),
    }


# --- subtask, run, feature ----------------------------------------------------------------


def subtask_in(workspace_id: int, code) -> Subtask | None:
    return (
        Subtask.objects.filter(workspace_id=workspace_id, code=code)
        .select_related("project", "feature", "assignee")
        .first()
    )


def subtask_runs(subtask: Subtask) -> list[AgentRun]:
    return list(
        AgentRun.objects.filter(subtask=subtask)
        .select_related("profile")
        .defer(*RUN_ROW_DEFER)
        .order_by("-created_at")
    )


def subtask_test_runs(subtask: Subtask) -> list[TestRun]:
    failing = Prefetch(
        "cases",
        queryset=TestCaseResult.objects.filter(
            outcome__in=[CaseOutcome.FAILED, CaseOutcome.ERROR]
        ).order_by("classname", "name"),
        to_attr="failing_cases",
    )
    return list(
        TestRun.objects.filter(subtask=subtask)
        .defer("output")
        .prefetch_related(failing)
        .order_by("-created_at")
    )


def subtask_dependencies(subtask: Subtask) -> tuple[list[Subtask], list[Subtask]]:
    waits_on = list(Subtask.objects.filter(dependent_links__subtask=subtask).order_by("key"))
    needed_by = list(Subtask.objects.filter(dependency_links__depends_on=subtask).order_by("key"))
    return waits_on, needed_by


def subtask_review(subtask: Subtask) -> tuple[object | None, list]:
    """The change set of the subtask's feature and the approvals that concern it.

    The review app owns both (review/models.py); it is looked up by name so the dashboard
    still renders, without these links, where the app is not installed. Approvals: the
    subtask's plan gates and the merge gates of its feature's change set, newest first.
    """
    if subtask.feature_id is None or not apps.is_installed("review"):
        return None, []
    change_sets = apps.get_model("review", "ChangeSet").objects
    changeset = (
        change_sets.filter(workspace_id=subtask.workspace_id, feature_id=subtask.feature_id)
        .only("id", "code", "status", "risk")
        .first()
    )
    concerned = Q(subtask_id=subtask.pk)
    if changeset is not None:
        concerned |= Q(changeset_id=changeset.pk)
    approvals = (
        apps.get_model("review", "Approval")
        .objects.filter(concerned, workspace_id=subtask.workspace_id)
        .only("id", "code", "kind", "state", "decided_by_label", "decided_at", "auto")
        .order_by("-created_at")[:10]
    )
    return changeset, list(approvals)


def latest_briefing(subtask: Subtask) -> AgentRun | None:
    return (
        AgentRun.objects.filter(subtask=subtask)
        .exclude(briefing="")
        .only("code", "briefing", "role", "step", "attempt", "created_at")
        .order_by("-created_at")
        .first()
    )


def run_in(workspace_id: int, code) -> AgentRun | None:
    return (
        AgentRun.objects.filter(workspace_id=workspace_id, code=code)
        .select_related("subtask", "feature", "profile", "project")
        .first()
    )


def feature_in(workspace_id: int, code) -> FeatureRequest | None:
    return (
        FeatureRequest.objects.filter(workspace_id=workspace_id, code=code)
        .select_related("project")
        .first()
    )


def feature_subtasks(feature: FeatureRequest) -> tuple[list[Subtask], list[tuple[int, int]]]:
    subtasks = list(Subtask.objects.filter(feature=feature).order_by("key"))
    edges = list(
        SubtaskDependency.objects.filter(subtask__feature=feature).values_list(
            "depends_on_id", "subtask_id"
        )
    )
    return subtasks, edges


def transition_history(subtask_ids: list[int]) -> dict[int, list[tuple[datetime, str, str]]]:
    """Per subtask, its transitions in order as (when, from, to)."""
    history: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    rows = (
        Event.objects.filter(subtask_id__in=subtask_ids, kind=EventKind.SUBTASK_TRANSITION)
        .order_by("id")
        .values_list("subtask_id", "created_at", "data")
    )
    for subtask_id, when, data in rows:
        history[subtask_id].append((when, data.get("from", ""), data.get("to", "")))
    return history


def recently_changed_subtasks(workspace_id: int, *, limit: int = 25) -> list[Subtask]:
    return list(
        Subtask.objects.filter(workspace_id=workspace_id)
        .select_related("feature")
        .order_by("-status_changed_at", "-id")[:limit]
    )


def completed_durations(project_id: int, *, limit: int = 200) -> list[float]:
    """Seconds from start to completion of the project's recently completed subtasks."""
    done = list(
        Subtask.objects.filter(project_id=project_id, status=SubtaskStatus.COMPLETED)
        .order_by("-status_changed_at")
        .values_list("id", "status_changed_at")[:limit]
    )
    starts = dict(
        Event.objects.filter(
            subtask_id__in=[pk for pk, _ in done],
            kind=EventKind.SUBTASK_TRANSITION,
            data__transition="start",
        )
        .values_list("subtask_id")
        .annotate(first=Min("created_at"))
        .order_by()
    )
    return [(finished - starts[pk]).total_seconds() for pk, finished in done if pk in starts]


# --- tests ------------------------------------------------------------------------------


def latest_test_runs(workspace_id: int) -> list[TestRun]:
    """Per project, its latest finished test run, with failures first and coverage."""
    finished = [TestRunStatus.PASSED, TestRunStatus.FAILED, TestRunStatus.ERROR]
    latest_ids = list(
        TestRun.objects.filter(workspace_id=workspace_id, status__in=finished)
        .values("project_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
        .order_by()
    )
    cases = TestCaseResult.objects.order_by("outcome", "classname", "name")
    runs = list(
        TestRun.objects.filter(id__in=latest_ids)
        .select_related("project", "subtask")
        .defer("output")
        .prefetch_related(Prefetch("cases", queryset=cases), "coverage_files")
        .order_by("project__name")
    )
    order = {
        CaseOutcome.ERROR: 0,
        CaseOutcome.FAILED: 1,
        CaseOutcome.SKIPPED: 2,
        CaseOutcome.PASSED: 3,
    }
    for run in runs:
        run.sorted_cases = sorted(run.cases.all(), key=lambda c: (order.get(c.outcome, 9), c.node))
    return runs


def recent_test_runs(workspace_id: int, *, limit: int = 15) -> list[TestRun]:
    return list(
        TestRun.objects.filter(workspace_id=workspace_id)
        .select_related("project", "subtask")
        .defer("output", "failure_context")
        .order_by("-created_at")[:limit]
    )


def now() -> datetime:
    return timezone.now()
