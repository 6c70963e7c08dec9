"""Agent runs as claimable work: enqueue, claim, heartbeat, finish, reap.

Every state change is a conditional UPDATE that must touch exactly one row, so a run is
held by at most one lease at a time whatever the interleaving of callers.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.utils import timezone
from django_fsm import FSMFieldMixin

from accounts.scrubbing import scrub
from orchestration import realtime
from orchestration.errors import Conflict, InvalidInput, LeaseLost
from orchestration.models import (
    AgentRun,
    Event,
    EventKind,
    FeatureRequest,
    Project,
    RunStatus,
    RunStep,
    Subtask,
)
from orchestration.services import effects
from orchestration.services.events import SEARCH_CONFIG, event_record


@dataclass(frozen=True)
class Claimer:
    """Who is claiming: a display name and, for API agents, the token's id."""

    name: str
    token_id: int | None = None


def lease_duration(seconds: int | None = None) -> timedelta:
    policy = settings.CODEMAESTRO
    if seconds is None:
        seconds = policy["LEASE_SECONDS"]
    if not 1 <= seconds <= policy["MAX_LEASE_SECONDS"]:
        raise InvalidInput(
            f"lease_seconds must be between 1 and {policy['MAX_LEASE_SECONDS']}",
            field="lease_seconds",
        )
    return timedelta(seconds=seconds)


def _sql_text(value: str) -> str:
    """A string literal inside SQL sent with %-style parameters (quotes and % doubled)."""
    return "'" + value.replace("'", "''").replace("%", "%%") + "'"


_RUN_FIELDS = tuple(AgentRun._meta.concrete_fields)


def _loaded_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """What the claim loads of a run's project, feature or subtask: its code, which the API
    answers with, and its FSM state, which the model reads as soon as it is built."""
    return tuple(
        field
        for field in model._meta.concrete_fields
        if field.name == "code" or isinstance(field, FSMFieldMixin)
    )


# Alias in the statement, the run's foreign key to it, and the columns read of it.
_RELATED = tuple(
    (field.name, field, _loaded_fields(field.related_model))
    for field in (AgentRun._meta.get_field(name) for name in ("project", "feature", "subtask"))
)
_STEP_LABEL = (
    "CASE claimed.step "
    + " ".join(f"WHEN {_sql_text(v)} THEN {_sql_text(str(label))}" for v, label in RunStep.choices)
    + " ELSE claimed.step END"
)

# One statement, so one round trip, on PostgreSQL: pick the oldest runnable row nobody else
# holds (SKIP LOCKED hands concurrent claimers different rows), take it, and append its claim
# Event with the columns and search document that events.event_record gives every event, so
# the claim and its history commit together or not at all. The row comes back with the codes
# the API answers with: nothing is read again.
CLAIM_SQL = f"""
WITH next AS (
    SELECT id FROM {AgentRun._meta.db_table}
    WHERE workspace_id = %(workspace)s::bigint AND role = %(role)s::text AND status = 'queued'
      AND available_at <= %(now)s::timestamptz
      AND (%(project)s::bigint IS NULL OR project_id = %(project)s::bigint)
    ORDER BY available_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {AgentRun._meta.db_table} AS run
    SET status = 'running', lease_id = %(lease)s::uuid, lease_expires_at = %(expires)s::timestamptz,
        claimed_by = %(claimed_by)s::text, claimed_by_token_id = %(token)s::bigint,
        claimed_at = %(now)s::timestamptz,
        heartbeat_at = %(now)s::timestamptz, claim_count = run.claim_count + 1
    FROM next WHERE run.id = next.id
    RETURNING run.*
), said AS (
    SELECT claimed.id, {_STEP_LABEL} || %(said)s::text AS message FROM claimed
), event AS (
    INSERT INTO {Event._meta.db_table} (
        workspace_id, kind, message, actor, project_id, feature_id, subtask_id, run_id, data,
        created_at, search_vector
    )
    SELECT claimed.workspace_id, {_sql_text(EventKind.RUN_CLAIMED)}, left(said.message, 500),
        %(actor)s::text, claimed.project_id, claimed.feature_id, claimed.subtask_id, claimed.id,
        jsonb_build_object('lease_expires_at', %(expires_text)s::text), %(now)s::timestamptz,
        to_tsvector(
            {_sql_text(SEARCH_CONFIG)}::regconfig,
            concat_ws(
                E'\\n', said.message, {_sql_text(EventKind.RUN_CLAIMED.replace(".", " "))},
                %(actor_text)s::text, %(expires_text)s::text
            )
        )
    FROM claimed JOIN said ON said.id = claimed.id
    RETURNING id
)
SELECT {", ".join(f"claimed.{field.column}" for field in _RUN_FIELDS)}, event.id,
    {", ".join(f"{name}.{field.column}" for name, _, fields in _RELATED for field in fields)}
FROM claimed CROSS JOIN event
JOIN {Project._meta.db_table} AS project ON project.id = claimed.project_id
LEFT JOIN {FeatureRequest._meta.db_table} AS feature ON feature.id = claimed.feature_id
LEFT JOIN {Subtask._meta.db_table} AS subtask ON subtask.id = claimed.subtask_id
"""


def _claim_postgresql(
    db: BaseDatabaseWrapper,
    workspace_id: int,
    role: str,
    claimer: Claimer,
    duration: timedelta,
    project_id: int | None,
) -> AgentRun | None:
    now = timezone.now()
    expires = now + duration
    params = {
        "workspace": workspace_id,
        "role": role,
        "project": project_id,
        "now": now,
        "lease": uuid.uuid4(),
        "expires": expires,
        "expires_text": expires.isoformat(),
        "claimed_by": claimer.name[:120],
        "token": claimer.token_id,
        # The claimer's name is the only free text of the event (event_record scrubs its
        # message the same way); the step's label is ours and the data a timestamp.
        "said": scrub(f" run claimed by {claimer.name}"),
        "actor": claimer.name[:120],
        "actor_text": claimer.name,
    }
    with _prepared_cursor(db) as cursor:
        cursor.execute(CLAIM_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return None
    run = _run_from_row(db, row)
    # Outside a transaction this publishes at once: the statement has committed.
    event = Event.from_db(db.alias, ["id", "workspace_id"], [row[len(_RUN_FIELDS)], workspace_id])
    realtime.publish_on_commit(event)
    return run


class _PreparingCursor(psycopg.Cursor):
    """Binds parameters server-side and has psycopg prepare the statement on first use on
    each connection (settings: DB_PREPARE_THRESHOLD), so PostgreSQL plans it only once."""

    def execute(self, query, params=None, *, prepare=True, binary=None):  # type: ignore[override]
        return super().execute(query, params, prepare=prepare, binary=binary)


def _prepared_cursor(db: BaseDatabaseWrapper):
    """A Django cursor (errors translated, queries logged when Django logs them) over a
    preparing psycopg cursor on the connection."""
    db.ensure_connection()
    raw = _PreparingCursor(db.connection)
    return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)


@functools.cache
def _run_converters() -> tuple[tuple[int, Any, Any], ...]:
    """(index, field, converter) for the columns whose Python value Django converts (JSON)."""
    return tuple(
        (index, field, convert)
        for index, field in enumerate(_RUN_FIELDS)
        for convert in field.get_db_converters(connection)
    )


def _run_from_row(db: BaseDatabaseWrapper, row: tuple) -> AgentRun:
    """The claimed run from the statement's row, with the project, feature and subtask the
    API names it by (their codes and states loaded; any other field loads when first read)."""
    count = len(_RUN_FIELDS)
    values = list(row[:count])
    for index, field, convert in _run_converters():
        values[index] = convert(values[index], field, db)
    run = AgentRun.from_db(db.alias, None, values)
    rest = iter(row[count + 1 :])
    for _, foreign_key, fields in _RELATED:
        loaded = [next(rest) for _ in fields]
        pk = getattr(run, foreign_key.attname)
        related = None
        if pk is not None:
            model = foreign_key.related_model
            names = [model._meta.pk.attname, *(field.attname for field in fields)]
            related = model.from_db(db.alias, names, [pk, *loaded])
        foreign_key.set_cached_value(run, related)
    return run


def _take_next_portable(
    workspace_id: int, role: str, claimer: Claimer, now, expires, project_id: int | None
) -> int | None:
    """Elsewhere (SQLite) the conditional UPDATE is the guard; a lost race tries the next row."""
    queue = AgentRun.objects.filter(
        workspace_id=workspace_id, role=role, status=RunStatus.QUEUED, available_at__lte=now
    ).order_by("available_at", "id")
    if project_id is not None:
        queue = queue.filter(project_id=project_id)
    for _ in range(5):
        run_id = queue.values_list("id", flat=True).first()
        if run_id is None:
            return None
        taken = AgentRun.objects.filter(id=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING,
            lease_id=uuid.uuid4(),
            lease_expires_at=expires,
            claimed_by=claimer.name[:120],
            claimed_by_token_id=claimer.token_id,
            claimed_at=now,
            heartbeat_at=now,
            claim_count=F("claim_count") + 1,
        )
        if taken:
            return run_id
    return None


def _claim_portable(
    workspace_id: int, role: str, claimer: Claimer, duration: timedelta, project_id: int | None
) -> AgentRun | None:
    with transaction.atomic():
        now = timezone.now()
        run_id = _take_next_portable(workspace_id, role, claimer, now, now + duration, project_id)
        if run_id is None:
            return None
        # The caller (the API) answers with the run's project, subtask and feature codes.
        run = AgentRun.objects.select_related("project", "subtask", "feature").get(id=run_id)
        event_record(
            workspace_id=workspace_id,
            kind=EventKind.RUN_CLAIMED,
            message=f"{run.get_step_display()} run claimed by {claimer.name}",
            actor=claimer.name,
            run=run,
            data={"lease_expires_at": run.lease_expires_at.isoformat()},
        )
    return run


def run_claim(
    *,
    workspace_id: int,
    role: str,
    claimer: Claimer,
    lease_seconds: int | None = None,
    project_id: int | None = None,
) -> AgentRun | None:
    """Give the oldest runnable queued run of this role (of one project, if given) to the
    claimer, or None.

    The run comes with its project, feature and subtask (their codes at least) and a
    `run.claimed` Event written in the same transaction.
    """
    duration = lease_duration(lease_seconds)
    # Bound once: every attribute read through the `connection` proxy costs a context lookup.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        return _claim_postgresql(db, workspace_id, role, claimer, duration, project_id)
    return _claim_portable(workspace_id, role, claimer, duration, project_id)


def run_heartbeat(
    *, run: AgentRun, lease_id: uuid.UUID, lease_seconds: int | None = None
) -> AgentRun:
    """Extend the lease of a run the caller still holds."""
    duration = lease_duration(lease_seconds)
    now = timezone.now()
    updated = AgentRun.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, lease_id=lease_id, lease_expires_at__gt=now
    ).update(heartbeat_at=now, lease_expires_at=now + duration)
    if not updated:
        raise _lease_lost(run)
    run.refresh_from_db()
    return run


def _lease_lost(run: AgentRun) -> LeaseLost:
    run.refresh_from_db(fields=["status", "lease_expires_at"])
    if run.status != RunStatus.RUNNING:
        return LeaseLost(f"run is {run.status}, not running", status=run.status)
    return LeaseLost("this lease is no longer held: it expired or the run was re-claimed")


def _finish(run: AgentRun, lease_id: uuid.UUID, status: str, fields: dict[str, Any]) -> AgentRun:
    now = timezone.now()
    updated = AgentRun.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, lease_id=lease_id
    ).update(status=status, finished_at=now, lease_expires_at=None, **fields)
    if not updated:
        raise _lease_lost(run)
    run.refresh_from_db()
    return run


@transaction.atomic(durable=True)
def run_complete(
    *,
    run: AgentRun,
    lease_id: uuid.UUID,
    output: str = "",
    result: dict[str, Any] | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal = Decimal(0),
    actor: str = "",
) -> AgentRun:
    """Record a successful run; its handoff runs on the workers after commit.

    A plan run whose manifest is invalid is recorded as a failed agent run instead, with
    every validation error, so the retry policy sends Orion back to it.
    """
    if run.step in (RunStep.PLAN, RunStep.REFINE, RunStep.PROMPT_REVIEW):
        try:
            validate_result(run.step, result or {}, run.workspace_id)
        except InvalidInput as exc:
            return _fail(
                run,
                lease_id,
                error=exc.message,
                failure_class="agent",
                output=output,
                actor=actor,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost=cost,
            )
    run = _finish(
        run,
        lease_id,
        RunStatus.SUCCEEDED,
        {
            "output": output,
            "result": result or {},
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost": cost,
        },
    )
    if run.result.get("commit") and run.result.get("branch"):
        _record_commit(run)
    event = event_record(
        workspace_id=run.workspace_id,
        kind=EventKind.RUN_SUCCEEDED,
        message=f"{run.get_step_display()} run succeeded",
        actor=actor or run.claimed_by,
        run=run,
        data={"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": str(cost)},
    )
    effects.handoff_on_commit(event)
    return run


def validate_result(step: str, result: dict[str, Any], workspace_id: int) -> None:
    """Steps whose output is data, not code, must deliver it in the agreed shape."""
    from orchestration.manifest import parse_refinement
    from orchestration.services.planning import validate_plan_output

    if step == RunStep.PLAN:
        validate_plan_output(result)
    elif step == RunStep.REFINE:
        parse_refinement(result)
    elif step == RunStep.PROMPT_REVIEW:
        from orchestration.services.proposals import validate_proposal

        validate_proposal(result, workspace_id)


def _record_commit(run: AgentRun) -> None:
    sha, branch = run.result["commit"], run.result["branch"]
    who = run.get_role_display().split(" ")[0]
    recovered = " (recovered after a crash)" if run.result.get("recovered") else ""
    event_record(
        workspace_id=run.workspace_id,
        kind=EventKind.GIT,
        message=f"{who} committed {sha[:8]} on {branch}{recovered}",
        actor=run.claimed_by,
        run=run,
        data={"commit": sha, "branch": branch, "base": run.result.get("base", "")},
    )


@transaction.atomic(durable=True)
def run_fail(*, run: AgentRun, lease_id: uuid.UUID, error: str, **fields: Any) -> AgentRun:
    """Record a failed run with its reason and class; the retry policy runs after commit."""
    return _fail(run, lease_id, error=error, **fields)


def _fail(
    run: AgentRun,
    lease_id: uuid.UUID,
    *,
    error: str,
    failure_class: str = "agent",
    output: str = "",
    actor: str = "",
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal = Decimal(0),
) -> AgentRun:
    run = _finish(
        run,
        lease_id,
        RunStatus.FAILED,
        {
            "error": error,
            "output": output,
            "result": {"failure_class": failure_class},
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost": cost,
        },
    )
    event = event_record(
        workspace_id=run.workspace_id,
        kind=EventKind.RUN_FAILED,
        message=f"{run.get_step_display()} run failed ({failure_class}): {error}",
        actor=actor or run.claimed_by,
        run=run,
        data={"failure_class": failure_class, "error": error[:2000]},
    )
    effects.handoff_on_commit(event)
    return run


def runs_reap_expired(*, now=None, limit: int = 500) -> int:
    """Return runs whose lease expired to the queue, so a crashed agent blocks nothing."""
    now = now or timezone.now()
    reaped = 0
    with transaction.atomic():
        expired = AgentRun.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
        if connection.features.has_select_for_update_skip_locked:
            expired = expired.select_for_update(skip_locked=True)
        for run in expired.order_by("lease_expires_at")[:limit]:
            updated = AgentRun.objects.filter(
                pk=run.pk, status=RunStatus.RUNNING, lease_id=run.lease_id
            ).update(
                status=RunStatus.QUEUED,
                lease_id=None,
                lease_expires_at=None,
                claimed_by="",
                claimed_by_token=None,
                available_at=now,
            )
            if not updated:
                continue
            reaped += 1
            event_record(
                workspace_id=run.workspace_id,
                kind=EventKind.RUN_LEASE_EXPIRED,
                message=f"lease of {run.claimed_by or 'an agent'} expired; run returned to queue",
                actor="reaper",
                run=run,
                data={"claimed_by": run.claimed_by},
            )
    return reaped


@transaction.atomic(durable=True)
def run_cancel(*, run: AgentRun, actor: str) -> AgentRun:
    """Stop a queued or running run; a worker holding it loses its lease at the next beat."""
    updated = AgentRun.objects.filter(
        pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).update(
        status=RunStatus.CANCELLED,
        finished_at=timezone.now(),
        lease_id=None,
        lease_expires_at=None,
    )
    run.refresh_from_db()
    if not updated:
        raise Conflict(f"run is {run.status}; only queued or running runs can be cancelled")
    event_record(
        workspace_id=run.workspace_id,
        kind=EventKind.RUN_CANCELLED,
        message=f"{run.get_step_display()} run cancelled by {actor}",
        actor=actor,
        run=run,
    )
    return run


RUN_RELEASED = EventKind.RUN_RELEASED


@transaction.atomic(durable=True)
def run_release(*, run: AgentRun, lease_id: uuid.UUID, actor: str, reason: str = "") -> AgentRun:
    """Give a held run back to the queue at once: its agent stopped without finishing it
    (Ctrl-C, a shutdown). Not a failure and no attempt used; the next claimer starts afresh,
    without waiting for the lease to run out."""
    now = timezone.now()
    updated = AgentRun.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, lease_id=lease_id
    ).update(
        status=RunStatus.QUEUED,
        lease_id=None,
        lease_expires_at=None,
        claimed_by="",
        claimed_by_token=None,
        available_at=now,
        dispatched_at=None,
    )
    if not updated:
        raise _lease_lost(run)
    holder = run.claimed_by
    run.refresh_from_db()
    event_record(
        workspace_id=run.workspace_id,
        kind=RUN_RELEASED,
        message=f"{run.get_step_display()} run released by {holder or actor}; back in the queue"
        + (f": {reason}" if reason else ""),
        actor=actor,
        run=run,
        data={"claimed_by": holder, "reason": reason[:500]},
    )
    from orchestration.services.dispatch import dispatch_on_commit

    dispatch_on_commit(run)  # a push profile's run goes back to the workers
    return run


def apply_run_cancel(*, run: AgentRun, actor: str, reason: str = "") -> bool:
    """Cancel a queued or running run inside the caller's transaction; False if it had
    already finished. For callers that change the run's subtask in the same transaction."""
    updated = AgentRun.objects.filter(
        pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).update(
        status=RunStatus.CANCELLED,
        finished_at=timezone.now(),
        lease_id=None,
        lease_expires_at=None,
    )
    run.refresh_from_db()
    if updated:
        event_record(
            workspace_id=run.workspace_id,
            kind=EventKind.RUN_CANCELLED,
            message=f"{run.get_step_display()} run cancelled by {actor}"
            + (f": {reason}" if reason else ""),
            actor=actor,
            run=run,
        )
    return bool(updated)
