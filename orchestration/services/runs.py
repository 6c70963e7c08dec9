"""Agent runs as claimable work: enqueue, claim, heartbeat, finish, reap.

Every state change is a conditional UPDATE that must touch exactly one row, so a run is
held by at most one lease at a time whatever the interleaving of callers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from orchestration.errors import Conflict, InvalidInput, LeaseLost
from orchestration.models import AgentRun, EventKind, RunStatus, RunStep
from orchestration.services import effects
from orchestration.services.events import event_record


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


# One statement on PostgreSQL: pick the oldest runnable row nobody else holds (SKIP LOCKED
# hands concurrent claimers different rows) and take it, in a single round trip.
CLAIM_SQL = """
WITH next AS (
    SELECT id FROM orchestration_agentrun
    WHERE workspace_id = %(workspace)s AND role = %(role)s AND status = 'queued'
      AND available_at <= %(now)s
    ORDER BY available_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE orchestration_agentrun AS run
SET status = 'running', lease_id = %(lease)s, lease_expires_at = %(expires)s,
    claimed_by = %(claimer)s, claimed_by_token_id = %(token)s, claimed_at = %(now)s,
    heartbeat_at = %(now)s, claim_count = run.claim_count + 1
FROM next WHERE run.id = next.id
RETURNING run.id
"""


def _take_next_postgresql(
    workspace_id: int, role: str, claimer: Claimer, now, expires
) -> int | None:
    params = {
        "workspace": workspace_id,
        "role": role,
        "now": now,
        "lease": uuid.uuid4(),
        "expires": expires,
        "claimer": claimer.name[:120],
        "token": claimer.token_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _take_next_portable(workspace_id: int, role: str, claimer: Claimer, now, expires) -> int | None:
    """Elsewhere (SQLite) the conditional UPDATE is the guard; a lost race tries the next row."""
    queue = AgentRun.objects.filter(
        workspace_id=workspace_id, role=role, status=RunStatus.QUEUED, available_at__lte=now
    ).order_by("available_at", "id")
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


def run_claim(
    *, workspace_id: int, role: str, claimer: Claimer, lease_seconds: int | None = None
) -> AgentRun | None:
    """Give the oldest runnable queued run of this role to the claimer, or None."""
    duration = lease_duration(lease_seconds)
    take = _take_next_postgresql if connection.vendor == "postgresql" else _take_next_portable
    with transaction.atomic():
        now = timezone.now()
        run_id = take(workspace_id, role, claimer, now, now + duration)
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
