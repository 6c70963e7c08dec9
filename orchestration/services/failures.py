"""What happens after something fails: retry with backoff, or escalate to a human.

Failure classes have their own policies. An *agent* failure uses one of the agent's
attempts and counts for its circuit breaker; *infrastructure* and *flaky* failures never do;
a *budget* failure stops at once. When attempts run out the subtask is escalated: blocked
with the reason, an Event, and a notification.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from orchestration.executors.base import FailureClass
from orchestration.lock_objects import lock_feature, lock_subtask
from orchestration.models import (
    AgentRun,
    EventKind,
    FeatureRequest,
    RunStatus,
    RunStep,
    Stage,
    Subtask,
    SubtaskStatus,
)
from orchestration.policy import policy_for
from orchestration.services import breakers, effects, notifications
from orchestration.services.briefings import briefing_for
from orchestration.services.events import event_record
from orchestration.services.transitions import apply_subtask_transition
from orchestration.services.work import apply_run_enqueue

ACTOR = "orchestrator"
ROLE_OF_STEP = {
    RunStep.PLAN: "pm",
    RunStep.TESTS: "tester",
    RunStep.REFINE: "product",
    RunStep.ADVERSARIAL: "qa",
}
# Where a subtask stands while each step's run works on it.
HOLDING_STATES = {
    RunStep.ADVERSARIAL: (SubtaskStatus.TESTING,),
}
DEFAULT_HOLDING = (SubtaskStatus.IN_PROGRESS, SubtaskStatus.RETRYING)


def role_for_step(subtask: Subtask, step: str) -> str:
    """Who carries a step: DevOps implements the subtasks it owns, Devon all others."""
    if step == RunStep.IMPLEMENTATION:
        return "devops" if subtask.owner_role == "devops" else "developer"
    return ROLE_OF_STEP[step]


def after_run_failed(run: AgentRun, cause_event_id: int) -> None:
    failure_class = run.result.get("failure_class", FailureClass.AGENT)
    if failure_class == FailureClass.AGENT and run.profile_id:
        breakers.breaker_record_failure(run.profile)
    if run.step == RunStep.PLAN:
        _after_plan_failed(run, cause_event_id, failure_class)
        return
    if run.step == RunStep.PROMPT_REVIEW:
        return  # advice, not work: its failure is on the timeline and changes nothing
    with transaction.atomic():
        subtask = lock_subtask(run.subtask_id)
        if subtask.status not in HOLDING_STATES.get(run.step, DEFAULT_HOLDING):
            return  # moved on meanwhile (a person blocked or resumed it)
        if failure_class == FailureClass.BUDGET:
            escalate(subtask, f"budget cap reached: {run.error}")
            return
        counter, limit = _counter_for(subtask, run, failure_class)
        used = bump(subtask, counter)
        if used >= limit:
            escalate(
                subtask,
                f"{used} {failure_class} failures of {run.get_step_display()}: {run.error[:300]}",
            )
            return
        requeue(
            subtask,
            run.step,
            cause_event_id,
            attempt=run.attempt + (1 if failure_class == FailureClass.AGENT else 0),
            note=run.error,
        )


def bump(subtask: Subtask, counter: str) -> int:
    """Add one to a locked subtask's counter, in the row and in the instance alike (a later
    save of the instance must not write the old value back)."""
    used = getattr(subtask, counter) + 1
    Subtask.objects.filter(pk=subtask.pk).update(**{counter: used})
    setattr(subtask, counter, used)
    return used


def _counter_for(subtask: Subtask, run: AgentRun, failure_class: str) -> tuple[str, int]:
    policy = policy_for(subtask.project)
    if failure_class != FailureClass.AGENT:
        return "infra_failures", policy.max_infra_failures
    if run.step in (RunStep.TESTS, RunStep.ADVERSARIAL, RunStep.REFINE):
        return "tester_attempts", policy.max_tester_attempts
    return "attempts", policy.max_attempts


def requeue(
    subtask: Subtask, step: str, cause_event_id: int, *, attempt: int, note: str = ""
) -> AgentRun:
    """Queue the same step again after the project's backoff, carrying what went wrong."""
    policy = policy_for(subtask.project)
    role = role_for_step(subtask, step)
    return apply_run_enqueue(
        project=subtask.project,
        subtask=subtask,
        role=role,
        step=step,
        actor=ACTOR,
        attempt=attempt,
        available_at=timezone.now() + policy.backoff(attempt),
        cause_event_id=cause_event_id,
        briefing=briefing_for(
            role=role, step=step, feature=subtask.feature, subtask=subtask, note=note
        ),
    )


def escalate(subtask: Subtask, reason: str) -> None:
    """Stop the agents on this subtask and ask a human (caller holds the subtask's lock)."""
    name = "escalate" if subtask.status == SubtaskStatus.FAILED else "block"
    apply_subtask_transition(subtask, name, actor=ACTOR, reason=reason[:2000])
    event = event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.ESCALATED,
        message=f"{subtask.key} escalated to a human: {reason[:300]}",
        actor=ACTOR,
        subtask=subtask,
        data={"reason": reason[:2000]},
    )
    notifications.notify_on_commit(event)
    effects.handoff_on_commit(event)  # the handoff table may send it to the prompt engineer


def after_tests_failed(subtask: Subtask, cause_event_id: int) -> None:
    """Verification failed (subtask locked, status failed): retry Devon or escalate."""
    policy = policy_for(subtask.project)
    if subtask.attempts + 1 >= policy.max_attempts:
        escalate(subtask, f"tests still fail after {subtask.attempts + 1} attempts")
        return
    apply_subtask_transition(subtask, "retry", actor=ACTOR)
    requeue(subtask, RunStep.IMPLEMENTATION, cause_event_id, attempt=subtask.attempts + 1)


def tests_not_red(subtask: Subtask, cause_event_id: int, reason: str) -> None:
    """Tara's tests do not fail before implementation: back to Tara, or escalate."""
    policy = policy_for(subtask.project)
    used = bump(subtask, "tester_attempts")
    if used >= policy.max_tester_attempts:
        escalate(subtask, f"tests are not red after {used} attempts: {reason}")
        return
    requeue(subtask, RunStep.TESTS, cause_event_id, attempt=used + 1, note=reason)


def _after_plan_failed(run: AgentRun, cause_event_id: int, failure_class: str) -> None:
    with transaction.atomic():
        feature = lock_feature(run.feature_id)
        if feature.status != "planning":
            return
        failed = AgentRun.objects.filter(
            feature=feature, step=RunStep.PLAN, status=RunStatus.FAILED
        ).count()
        limit = policy_for(feature.project).max_attempts
        if failure_class == FailureClass.BUDGET or failed >= limit:
            _escalate_feature(feature, f"planning failed {failed} times: {run.error[:300]}")
            return
        apply_run_enqueue(
            project=feature.project,
            feature=feature,
            role="pm",
            step=RunStep.PLAN,
            actor=ACTOR,
            attempt=failed + 1,
            available_at=timezone.now() + policy_for(feature.project).backoff(failed),
            cause_event_id=cause_event_id,
            briefing=briefing_for(role="pm", step="plan", feature=feature, subtask=None),
        )


def _escalate_feature(feature: FeatureRequest, reason: str) -> None:
    event = event_record(
        workspace_id=feature.workspace_id,
        kind=EventKind.ESCALATED,
        message=f"feature {feature.slug} escalated to a human: {reason}",
        actor=ACTOR,
        feature=feature,
        data={"reason": reason},
    )
    notifications.notify_on_commit(event)


def stage_role(subtask: Subtask) -> tuple[str, str]:
    """The step and role that hold a subtask in progress, by its stage."""
    if subtask.stage == Stage.TESTS:
        return RunStep.TESTS, "tester"
    return RunStep.IMPLEMENTATION, "developer"
