"""Circuit breaker per agent profile: stop handing work to an executor that keeps failing.

closed → open after `breaker_threshold` consecutive agent or infrastructure failures of
the executor; open → half-open after the cooldown (one trial run); half-open → closed on
success, back to open on failure. Every move is a conditional UPDATE, so concurrent workers
agree on exactly one trial run.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from orchestration.models import AgentProfile, AgentRun, BreakerState, EventKind, RunStatus
from orchestration.services.events import event_record

ACTOR = "circuit-breaker"


def breaker_record_success(profile: AgentProfile) -> None:
    closed = (
        AgentProfile.objects.filter(pk=profile.pk)
        .exclude(breaker_state=BreakerState.CLOSED)
        .update(breaker_state=BreakerState.CLOSED, consecutive_failures=0, breaker_opened_at=None)
    )
    AgentProfile.objects.filter(pk=profile.pk, consecutive_failures__gt=0).update(
        consecutive_failures=0
    )
    if closed:
        _record(profile, "closed after a successful trial run")
        # Work that waited behind the open breaker goes out with the next sweep.
        AgentRun.objects.filter(profile=profile, status=RunStatus.QUEUED).update(dispatched_at=None)


def breaker_record_failure(profile: AgentProfile) -> None:
    now = timezone.now()
    reopened = AgentProfile.objects.filter(
        pk=profile.pk, breaker_state=BreakerState.HALF_OPEN
    ).update(breaker_state=BreakerState.OPEN, breaker_opened_at=now)
    if reopened:
        _record(profile, "re-opened: the trial run failed")
        return
    AgentProfile.objects.filter(pk=profile.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    opened = AgentProfile.objects.filter(
        pk=profile.pk,
        breaker_state=BreakerState.CLOSED,
        consecutive_failures__gte=F("breaker_threshold"),
    ).update(breaker_state=BreakerState.OPEN, breaker_opened_at=now)
    if opened:
        _record(profile, f"opened after {profile.breaker_threshold} consecutive failures")


def breaker_allows(profile: AgentProfile) -> bool:
    """May a run be handed to this profile now? Half-opens an open breaker past its cooldown.

    Exactly one caller wins the move to half-open and gets True: that is the trial run.
    """
    profile.refresh_from_db(fields=["breaker_state", "breaker_opened_at"])
    if profile.breaker_state == BreakerState.CLOSED:
        return True
    if profile.breaker_state == BreakerState.HALF_OPEN:
        return False
    cooled = timezone.now() - timedelta(seconds=profile.breaker_cooldown_seconds)
    won = AgentProfile.objects.filter(
        pk=profile.pk, breaker_state=BreakerState.OPEN, breaker_opened_at__lte=cooled
    ).update(breaker_state=BreakerState.HALF_OPEN)
    if won:
        _record(profile, "half-open: handing out one trial run")
    return bool(won)


def _record(profile: AgentProfile, what: str) -> None:
    event_record(
        workspace_id=profile.workspace_id,
        kind=EventKind.BREAKER,
        message=f"circuit breaker of {profile.name} {what}",
        actor=ACTOR,
        data={"profile": str(profile.code), "what": what},
    )
