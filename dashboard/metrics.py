"""Delivery metrics per day over a window, computed by the database (grouped queries).

Definitions (also shown on the page):
- throughput: subtasks completed per day;
- first-pass rate: completed subtasks that needed no developer retry;
- time-to-green: from a subtask's first agent run to its first passing verify test run;
- human intervention rate: subtask transitions made by a person (`user:` actors);
- rollback rate: reviews sent back (request_changes) per review decision;
- agents: queue wait (queued → claimed), duration (claimed → finished), success rate;
- tokens and cost per task (subtask) and per feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Avg, Count, F, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orchestration.models import (
    AgentRun,
    Event,
    EventKind,
    FeatureRequest,
    RunStatus,
    Subtask,
    SubtaskStatus,
    TestRun,
    TestRunPurpose,
    TestRunStatus,
)

FINISHED = [RunStatus.SUCCEEDED, RunStatus.FAILED]


@dataclass
class Series:
    title: str
    unit: str
    points: list[tuple[date, float | None]]
    kind: str = "bar"  # or "line" for rates

    @property
    def latest(self) -> float | None:
        values = [v for _, v in self.points if v is not None]
        return values[-1] if values else None

    @property
    def total(self) -> float:
        return sum(v or 0 for _, v in self.points)


def days(window: int) -> list[date]:
    today = timezone.now().date()
    return [today - timedelta(days=n) for n in range(window - 1, -1, -1)]


def _since(window: int):
    return timezone.now() - timedelta(days=window)


def _per_day(rows, window: int, value) -> list[tuple[date, float | None]]:
    by_day = {row["day"]: value(row) for row in rows}
    return [(day, by_day.get(day)) for day in days(window)]


def _ratio(part: str, whole: str):
    return lambda row: (100.0 * row[part] / row[whole]) if row[whole] else None


def throughput_and_first_pass(workspace_id: int, window: int) -> tuple[Series, Series]:
    rows = (
        Subtask.objects.filter(
            workspace_id=workspace_id,
            status=SubtaskStatus.COMPLETED,
            status_changed_at__gte=_since(window),
        )
        .annotate(day=TruncDate("status_changed_at"))
        .values("day")
        .annotate(done=Count("id"), first=Count("id", filter=Q(attempts=0)))
        .order_by()
    )
    rows = list(rows)
    return (
        Series("Throughput", "tasks/day", _per_day(rows, window, lambda r: r["done"])),
        Series("First-pass rate", "%", _per_day(rows, window, _ratio("first", "done")), "line"),
    )


def transition_rates(workspace_id: int, window: int) -> tuple[Series, Series]:
    rows = list(
        Event.objects.filter(
            workspace_id=workspace_id,
            kind=EventKind.SUBTASK_TRANSITION,
            created_at__gte=_since(window),
        )
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            all=Count("id"),
            human=Count("id", filter=Q(actor__startswith="user:")),
            reviews=Count("id", filter=Q(data__transition__in=["complete", "request_changes"])),
            back=Count("id", filter=Q(data__transition="request_changes")),
        )
        .order_by()
    )
    return (
        Series(
            "Human intervention rate", "%", _per_day(rows, window, _ratio("human", "all")), "line"
        ),
        Series("Rollback rate", "%", _per_day(rows, window, _ratio("back", "reviews")), "line"),
    )


def time_to_green(workspace_id: int, window: int) -> Series:
    first_run = (
        AgentRun.objects.filter(subtask=OuterRef("subtask"))
        .order_by("created_at")
        .values("created_at")[:1]
    )
    greens = (
        TestRun.objects.filter(
            workspace_id=workspace_id,
            purpose=TestRunPurpose.VERIFY,
            status=TestRunStatus.PASSED,
            finished_at__gte=_since(window),
        )
        .values("subtask")
        .annotate(green=Min("finished_at"))
        .annotate(began=Subquery(first_run))
        .order_by()
    )
    per_day: dict[date, list[float]] = {}
    for row in greens:
        if row["began"] and row["green"]:
            seconds = (row["green"] - row["began"]).total_seconds()
            per_day.setdefault(row["green"].date(), []).append(seconds / 60)
    points = [(d, sum(v) / len(v) if (v := per_day.get(d)) else None) for d in days(window)]
    return Series("Time to green", "min", points, "line")


def cost_per_day(workspace_id: int, window: int) -> Series:
    rows = list(
        AgentRun.objects.filter(workspace_id=workspace_id, created_at__gte=_since(window))
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    return Series("Agent cost", "$/day", _per_day(rows, window, lambda r: float(r["cost"] or 0)))


@dataclass
class AgentStats:
    role: str
    label: str
    runs: int
    succeeded: int
    wait_seconds: float | None
    run_seconds: float | None
    tokens: int
    cost: float

    @property
    def success_rate(self) -> float | None:
        return 100.0 * self.succeeded / self.runs if self.runs else None


def agents(workspace_id: int, window: int) -> list[AgentStats]:
    rows = (
        AgentRun.objects.filter(
            workspace_id=workspace_id, status__in=FINISHED, created_at__gte=_since(window)
        )
        .values("role")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=RunStatus.SUCCEEDED)),
            wait=Avg(F("claimed_at") - F("created_at")),
            took=Avg(F("finished_at") - F("claimed_at")),
            tokens=Sum(F("tokens_in") + F("tokens_out")),
            cost=Sum("cost"),
        )
        .order_by("role")
    )
    labels = dict(AgentRun._meta.get_field("role").choices)
    return [
        AgentStats(
            row["role"],
            labels.get(row["role"], row["role"]),
            row["runs"],
            row["succeeded"],
            row["wait"].total_seconds() if row["wait"] else None,
            row["took"].total_seconds() if row["took"] else None,
            row["tokens"] or 0,
            float(row["cost"] or 0),
        )
        for row in rows
    ]


def agent_success_series(workspace_id: int, window: int) -> list[Series]:
    rows = list(
        AgentRun.objects.filter(
            workspace_id=workspace_id, status__in=FINISHED, created_at__gte=_since(window)
        )
        .annotate(day=TruncDate("created_at"))
        .values("day", "role")
        .annotate(runs=Count("id"), ok=Count("id", filter=Q(status=RunStatus.SUCCEEDED)))
        .order_by()
    )
    labels = dict(AgentRun._meta.get_field("role").choices)
    series = []
    for role in sorted({r["role"] for r in rows}):
        mine = [r for r in rows if r["role"] == role]
        name = labels.get(role, role).split(" ")[0]
        series.append(
            Series(
                f"{name} success rate", "%", _per_day(mine, window, _ratio("ok", "runs")), "line"
            )
        )
    return series


def cost_by_feature(workspace_id: int, window: int, *, limit: int = 10) -> list[FeatureRequest]:
    """The window's features by cost; each sum is a subquery so the joins never multiply."""

    def total(expression):
        runs = AgentRun.objects.filter(feature=OuterRef("pk")).values("feature")
        return Subquery(runs.annotate(v=expression).values("v")[:1])

    tasks = Subtask.objects.filter(feature=OuterRef("pk")).values("feature")
    return list(
        FeatureRequest.objects.filter(workspace_id=workspace_id, created_at__gte=_since(window))
        .annotate(
            tokens=total(Sum(F("tokens_in") + F("tokens_out"))),
            cost=total(Sum("cost")),
            tasks=Subquery(tasks.annotate(n=Count("id")).values("n")[:1]),
        )
        .order_by(F("cost").desc(nulls_last=True), "-created_at")[:limit]
    )


def cost_per_task(workspace_id: int, window: int) -> dict[str, float]:
    totals = AgentRun.objects.filter(
        workspace_id=workspace_id, created_at__gte=_since(window), subtask__isnull=False
    ).aggregate(
        tasks=Count("subtask", distinct=True),
        tokens=Sum(F("tokens_in") + F("tokens_out")),
        cost=Sum("cost"),
    )
    tasks = totals["tasks"] or 0
    return {
        "tasks": tasks,
        "tokens": (totals["tokens"] or 0) / tasks if tasks else 0,
        "cost": float(totals["cost"] or 0) / tasks if tasks else 0,
    }
