"""What the workers do after a committed event, with no human in between.

Each handler re-reads state under a lock and does nothing if its step already happened, so
a redelivered task never runs a step twice; runs and test runs it queues carry the causing
event's id in a unique column for the same reason.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestration.lock_objects import lock_feature, lock_subtask
from orchestration.models import (
    AgentRun,
    Event,
    EventKind,
    FeatureStatus,
    HandledEvent,
    HandoffAction,
    HandoffRule,
    RunStep,
    Stage,
    Subtask,
    SubtaskStatus,
    TestRunPurpose,
    Trigger,
)
from orchestration.services import failures, handoffs_table, planning, proposals, testing
from orchestration.services.breakers import breaker_record_success
from orchestration.services.effects import publish
from orchestration.services.transitions import (
    apply_feature_transition,
    apply_subtask_transition,
    unfinished_dependencies,
)

log = logging.getLogger(__name__)
ACTOR = "orchestrator"


def handle_event(event_id: int) -> None:
    event = Event.objects.filter(pk=event_id).select_related("run__profile").first()
    if event is None:
        log.warning("handoff for missing event %s", event_id)
        return
    handler = HANDLERS.get(event.kind)
    if handler is not None:
        handler(event)
        # One INSERT; a second delivery's receipt is simply dropped.
        HandledEvent.objects.bulk_create([HandledEvent(event_id=event.pk)], ignore_conflicts=True)


def rehandle_unhandled_events(*, limit: int = 200) -> int:
    """Re-send events whose handoff never ran (a lost message, a worker that died)."""
    from orchestration import tasks

    now = timezone.now()
    age = timezone.timedelta(seconds=settings.CODEMAESTRO["REHANDLE_EVENT_SECONDS"])
    pending = list(
        Event.objects.filter(
            kind__in=list(HANDLERS),
            created_at__lt=now - age,
            created_at__gt=now - timezone.timedelta(days=1),
            handled__isnull=True,
        )
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    for event_id in pending:
        publish(tasks.handle_event, event_id)
    return len(pending)


def _after_subtask_transition(event: Event) -> None:
    name = event.data.get("transition")
    if name in ("start", "resume", "request_changes"):
        _restart_stage(event)
    elif name == "complete":
        start_ready_dependents(event.subtask_id)
        _finish_feature_if_done(event.subtask_id)


def _restart_stage(event: Event) -> None:
    """A subtask (re)entered in_progress: whoever holds its stage gets a run."""
    with transaction.atomic():
        subtask = lock_subtask(event.subtask_id)
        if subtask.status != SubtaskStatus.IN_PROGRESS:
            return
        if subtask.stage == Stage.TESTS:
            handoffs_table.fire(Trigger.FRD_COMPLETE, subtask, event.pk)
        else:
            handoffs_table.queue_implementation(subtask, event.pk)


def _after_feature_transition(event: Event) -> None:
    if event.data.get("to") == FeatureStatus.PLANNING:
        planning.queue_plan_run(event.feature_id, cause_event_id=event.pk)


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


def _finish_feature_if_done(subtask_id: int) -> None:
    feature_id = Subtask.objects.filter(pk=subtask_id).values_list("feature_id", flat=True).first()
    if feature_id is None:
        return
    with transaction.atomic():
        feature = lock_feature(feature_id)
        if feature.status != FeatureStatus.IN_PROGRESS:
            return
        if feature.subtasks.exclude(status=SubtaskStatus.COMPLETED).exists():
            return
        apply_feature_transition(feature, "finish", actor=ACTOR)


def _after_run_succeeded(event: Event) -> None:
    run: AgentRun = event.run
    if run.profile_id:
        breaker_record_success(run.profile)
    if run.step == RunStep.PLAN:
        planning.plan_apply(run.pk)
        return
    if run.step == RunStep.PROMPT_REVIEW:
        with transaction.atomic():
            proposals.proposal_record(run)
        return
    with transaction.atomic():
        subtask = lock_subtask(run.subtask_id)
        if run.step == RunStep.REFINE:
            handoffs_table.apply_refinement(subtask, run, event.pk)
        elif run.step == RunStep.ADVERSARIAL:
            if subtask.status == SubtaskStatus.TESTING:
                # QA's tests join the suite: the whole suite must be green again.
                testing.apply_testrun_queue(
                    subtask=subtask,
                    purpose=TestRunPurpose.VERIFY,
                    cause_event_id=event.pk,
                    agent_run=run,
                )
        elif run.step == RunStep.TESTS:
            if subtask.status == SubtaskStatus.IN_PROGRESS and subtask.stage == Stage.TESTS:
                # Tests first, enforced: Tara's tests must be collected and red first.
                testing.apply_testrun_queue(
                    subtask=subtask,
                    purpose=TestRunPurpose.RED_CHECK,
                    cause_event_id=event.pk,
                    agent_run=run,
                )
        else:
            handoffs_table.fire(Trigger.IMPLEMENTATION_COMPLETE, subtask, event.pk)


def _after_run_failed(event: Event) -> None:
    failures.after_run_failed(event.run, event.pk)


def _after_escalation(event: Event) -> None:
    """An escalated subtask may also go to the prompt engineer, if the project says so."""
    if event.subtask_id is None:
        return
    with transaction.atomic():
        subtask = lock_subtask(event.subtask_id)
        rule = HandoffRule.objects.filter(
            project_id=subtask.project_id, trigger=Trigger.ESCALATED, enabled=True
        ).first()
        if rule is not None and rule.action == HandoffAction.QUEUE_PROMPT_REVIEW:
            proposals.queue_prompt_review(subtask, event.pk)


HANDLERS = {
    EventKind.ESCALATED: _after_escalation,
    EventKind.SUBTASK_TRANSITION: _after_subtask_transition,
    EventKind.FEATURE_TRANSITION: _after_feature_transition,
    EventKind.RUN_SUCCEEDED: _after_run_succeeded,
    EventKind.RUN_FAILED: _after_run_failed,
}
