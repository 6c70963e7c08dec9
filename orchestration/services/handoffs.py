"""The handoff table: what the workers do after a committed event, with no human between.

Each handler re-reads state under a lock and does nothing if its step already happened,
so a redelivered task never runs a step twice. Runs it queues carry the causing event's id
in a unique column for the same reason.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from orchestration.lock_objects import lock_subtask
from orchestration.models import (
    AgentRun,
    Event,
    EventKind,
    RunStep,
    Stage,
    Subtask,
    SubtaskStatus,
)
from orchestration.services.events import event_record
from orchestration.services.transitions import apply_subtask_transition, unfinished_dependencies
from orchestration.services.work import apply_run_enqueue

log = logging.getLogger(__name__)
ACTOR = "orchestrator"


def handle_event(event_id: int) -> None:
    event = Event.objects.filter(pk=event_id).select_related("run").first()
    if event is None:
        log.warning("handoff for missing event %s", event_id)
        return
    if event.kind == EventKind.SUBTASK_TRANSITION:
        _after_subtask_transition(event)
    elif event.kind == EventKind.RUN_SUCCEEDED and event.run is not None:
        _after_run_succeeded(event)


def _after_subtask_transition(event: Event) -> None:
    target = event.data.get("to")
    if target == SubtaskStatus.IN_PROGRESS and event.data.get("transition") == "start":
        _queue_run(event, step=RunStep.TESTS, role="tester")
    elif target == SubtaskStatus.COMPLETED:
        start_ready_dependents(event.subtask_id)


def _queue_run(event: Event, *, step: str, role: str) -> AgentRun | None:
    try:
        with transaction.atomic():
            subtask = lock_subtask(event.subtask_id)
            return apply_run_enqueue(
                project=subtask.project,
                subtask=subtask,
                role=role,
                step=step,
                actor=ACTOR,
                attempt=subtask.attempts + 1,
                cause_event_id=event.pk,
            )
    except IntegrityError:
        return None  # this event's run was already queued by an earlier delivery


def start_ready_dependents(subtask_id: int) -> list[str]:
    """Start every pending dependent of a completed subtask whose dependencies are all done."""
    started = []
    dependents = Subtask.objects.filter(
        dependency_links__depends_on_id=subtask_id, status=SubtaskStatus.PENDING
    ).values_list("pk", flat=True)
    for pk in dependents:
        with transaction.atomic():
            subtask = lock_subtask(pk)
            if subtask.status != SubtaskStatus.PENDING or unfinished_dependencies(subtask):
                continue
            apply_subtask_transition(subtask, "start", actor=ACTOR)
            started.append(subtask.key)
    return started


def _after_run_succeeded(event: Event) -> None:
    run = event.run
    if run.subtask_id is None:
        return
    if run.step == RunStep.TESTS:
        _tests_ready(event)
    elif run.step == RunStep.IMPLEMENTATION:
        with transaction.atomic():
            subtask = lock_subtask(run.subtask_id)
            source = SubtaskStatus.RETRYING if subtask.status == SubtaskStatus.RETRYING else None
            if (
                subtask.status == SubtaskStatus.IN_PROGRESS
                and subtask.stage == Stage.IMPLEMENTATION
            ):
                apply_subtask_transition(subtask, "submit", actor=ACTOR)
            elif source:
                apply_subtask_transition(subtask, "retest", actor=ACTOR)


def _tests_ready(event: Event) -> None:
    """Tara marked the tests ready: the subtask passes to Devon's implementation stage."""
    with transaction.atomic():
        subtask = lock_subtask(event.run.subtask_id)
        if subtask.status != SubtaskStatus.IN_PROGRESS or subtask.stage != Stage.TESTS:
            return
        Subtask.objects.filter(pk=subtask.pk).update(stage=Stage.IMPLEMENTATION)
        event_record(
            workspace_id=subtask.workspace_id,
            kind=EventKind.SUBTASK_STAGE,
            message=f"{subtask.key}: tests ready, implementation stage",
            actor=ACTOR,
            subtask=subtask,
            data={"stage": Stage.IMPLEMENTATION},
        )
    _queue_run(event, step=RunStep.IMPLEMENTATION, role="developer")
