"""Which profile takes a run, and handing push runs to the workers.

A queued run of a push executor (command, LLM, demo) is sent to a worker right after its
transaction commits, or later by the periodic sweep when its backoff ends, its breaker
half-opens, or the first message was lost. Sending twice is harmless: the worker's claim
is a conditional UPDATE that only one delivery can win.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestration.models import (
    AgentProfile,
    AgentRun,
    BreakerState,
    Executor,
    Project,
    RunStatus,
    Subtask,
)
from orchestration.services.effects import enqueue_on_commit


def redispatch_after() -> timedelta:
    return timedelta(seconds=settings.CODEMAESTRO["REDISPATCH_SECONDS"])


def profile_for(project: Project, role: str, subtask: Subtask | None = None) -> AgentProfile | None:
    """The subtask's assignee, else the project's chosen profile for the role, else the
    workspace's first profile of that role; None means the run waits for an external agent."""
    if subtask is not None and subtask.assignee_id:
        return subtask.assignee
    profiles = AgentProfile.objects.filter(workspace_id=project.workspace_id, role=role)
    chosen = (project.policy or {}).get("profiles", {}).get(role)
    if chosen:
        return profiles.filter(name=chosen).first()
    return profiles.order_by("pk").first()


def is_push(profile: AgentProfile | None) -> bool:
    return profile is not None and profile.executor != Executor.EXTERNAL


def dispatch_on_commit(run: AgentRun) -> None:
    """Send a push run to the workers once the caller's transaction has committed."""
    if not is_push(run.profile) or run.available_at > timezone.now():
        return  # external agents claim it; a backed-off run is picked up by the sweep
    from orchestration import tasks

    AgentRun.objects.filter(pk=run.pk).update(dispatched_at=timezone.now())
    enqueue_on_commit(tasks.execute_run, run.pk)


def runs_due_for_dispatch(*, limit: int = 200) -> list[int]:
    """Queued push runs whose time has come and that no worker message is known to carry."""
    now = timezone.now()
    return list(
        AgentRun.objects.filter(
            status=RunStatus.QUEUED,
            available_at__lte=now,
            profile__isnull=False,
        )
        .exclude(profile__executor=Executor.EXTERNAL)
        .exclude(profile__breaker_state=BreakerState.HALF_OPEN)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - redispatch_after()))
        .order_by("available_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def dispatch_due_runs() -> int:
    from orchestration import tasks

    run_ids = runs_due_for_dispatch()
    now = timezone.now()
    for run_id in run_ids:
        with transaction.atomic():
            marked = AgentRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                dispatched_at=now
            )
            if marked:
                enqueue_on_commit(tasks.execute_run, run_id)
    return len(run_ids)
