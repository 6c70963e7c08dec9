"""The handoff table as data: on a trigger, the project's rule says which action runs.

A project without its own rows uses DEFAULT_HANDOFFS. A disabled rule, or the NOTIFY
action, stops the cycle there and tells a human, who moves the work on by hand.
"""

from __future__ import annotations

from orchestration import extensions
from orchestration.models import (
    DEFAULT_HANDOFFS,
    EventKind,
    HandoffAction,
    HandoffRule,
    Project,
    RunStep,
    Stage,
    Subtask,
    SubtaskStatus,
    TestRunPurpose,
)
from orchestration.services import failures, notifications, testing
from orchestration.services.briefings import briefing_for
from orchestration.services.events import event_record
from orchestration.services.transitions import apply_subtask_transition
from orchestration.services.work import apply_run_enqueue

ACTOR = "orchestrator"


def action_for(project: Project, trigger: str) -> str | None:
    """The action this project takes on `trigger`, or None when a human must act."""
    rule = HandoffRule.objects.filter(project=project, trigger=trigger).first()
    if rule is None:
        return DEFAULT_HANDOFFS.get(trigger)
    if not rule.enabled or rule.action == HandoffAction.NOTIFY:
        return None
    return rule.action


def fire(trigger: str, subtask: Subtask, cause_event_id: int) -> None:
    """Run the action for `trigger` on a subtask the caller has locked."""
    action = action_for(subtask.project, trigger)
    if action is None:
        event = event_record(
            workspace_id=subtask.workspace_id,
            kind=EventKind.HANDOFF_STOPPED,
            message=f"{subtask.key}: handoff on '{trigger}' waits for a human (project rule)",
            actor=ACTOR,
            subtask=subtask,
            data={"trigger": trigger},
        )
        notifications.notify_on_commit(event)
        return
    ACTIONS[action](subtask, cause_event_id)


def queue_tests(subtask: Subtask, cause: int) -> None:
    if subtask.status == SubtaskStatus.IN_PROGRESS and subtask.stage == Stage.TESTS:
        _queue(subtask, RunStep.TESTS, "tester", cause)


def queue_implementation(subtask: Subtask, cause: int) -> None:
    if subtask.status != SubtaskStatus.IN_PROGRESS:
        return
    if subtask.stage != Stage.IMPLEMENTATION:
        Subtask.objects.filter(pk=subtask.pk).update(stage=Stage.IMPLEMENTATION)
        subtask.stage = Stage.IMPLEMENTATION
        event_record(
            workspace_id=subtask.workspace_id,
            kind=EventKind.SUBTASK_STAGE,
            message=f"{subtask.key}: tests are red; Devon implements",
            actor=ACTOR,
            subtask=subtask,
            data={"stage": Stage.IMPLEMENTATION},
        )
    # A high-risk plan waits for a reviewer; approving it calls this again.
    review = extensions.review()
    if review is not None and not review.plan_gate_open(subtask, cause):
        return
    _queue(
        subtask,
        RunStep.IMPLEMENTATION,
        failures.role_for_step(subtask, RunStep.IMPLEMENTATION),
        cause,
        attempt=subtask.attempts + 1,
    )


def run_tests(subtask: Subtask, cause: int) -> None:
    if subtask.status == SubtaskStatus.IN_PROGRESS:
        apply_subtask_transition(subtask, "submit", actor=ACTOR)
    elif subtask.status == SubtaskStatus.RETRYING:
        apply_subtask_transition(subtask, "retest", actor=ACTOR)
    else:
        return
    testing.apply_testrun_queue(
        subtask=subtask,
        purpose=TestRunPurpose.VERIFY,
        cause_event_id=cause,
        agent_run=subtask.runs.filter(step=RunStep.IMPLEMENTATION).order_by("-id").first(),
    )


def open_review(subtask: Subtask, cause: int) -> None:
    if subtask.status == SubtaskStatus.TESTING:
        apply_subtask_transition(subtask, "pass_tests", actor=ACTOR)
        # The change set and its merge gate; low risk with green tests completes there.
        review = extensions.review()
        if review is not None:
            review.open(subtask, cause)


def queue_retry(subtask: Subtask, cause: int) -> None:
    if subtask.status != SubtaskStatus.TESTING:
        return
    apply_subtask_transition(subtask, "fail_tests", actor=ACTOR)
    failures.after_tests_failed(subtask, cause)


def _queue(subtask: Subtask, step: str, role: str, cause: int, *, attempt: int = 1) -> None:
    apply_run_enqueue(
        project=subtask.project,
        subtask=subtask,
        role=role,
        step=step,
        actor=ACTOR,
        attempt=attempt,
        cause_event_id=cause,
        briefing=briefing_for(role=role, step=step, feature=subtask.feature, subtask=subtask),
    )


def queue_refine(subtask: Subtask, cause: int) -> None:
    """The product manager sharpens a ready subtask's requirements before Tara writes tests."""
    if subtask.status != SubtaskStatus.IN_PROGRESS or subtask.stage != Stage.TESTS:
        return
    if subtask.runs.filter(step=RunStep.REFINE, status="succeeded").exists():
        queue_tests(subtask, cause)
        return
    _queue(subtask, RunStep.REFINE, "product", cause)


def apply_refinement(subtask: Subtask, run, cause: int) -> None:
    """Store the refined requirements (validated when the run completed), then Tara."""
    from orchestration.manifest import parse_refinement

    refined = parse_refinement(run.result)
    criteria = "".join(f"\n- {line}" for line in refined.acceptance_criteria)
    tester = refined.tester + (f"\n\nAcceptance criteria:{criteria}" if criteria else "")
    Subtask.objects.filter(pk=subtask.pk).update(
        requirements_developer=refined.developer, requirements_tester=tester
    )
    subtask.requirements_developer, subtask.requirements_tester = refined.developer, tester
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.SUBTASK_STAGE,
        message=f"{subtask.key}: requirements refined by the product manager",
        actor=run.claimed_by or ACTOR,
        subtask=subtask,
        run=run,
        data={"acceptance_criteria": list(refined.acceptance_criteria)},
    )
    queue_tests(subtask, cause)


def queue_qa(subtask: Subtask, cause: int) -> None:
    """QA/Breaker attacks each implementation attempt once; then the change goes to review."""
    if subtask.status != SubtaskStatus.TESTING:
        return
    attempt = subtask.attempts + 1
    if subtask.runs.filter(step=RunStep.ADVERSARIAL, attempt=attempt, status="succeeded").exists():
        open_review(subtask, cause)
        return
    _queue(subtask, RunStep.ADVERSARIAL, "qa", cause, attempt=attempt)


ACTIONS = {
    HandoffAction.QUEUE_TESTS: queue_tests,
    HandoffAction.QUEUE_IMPLEMENTATION: queue_implementation,
    HandoffAction.RUN_TESTS: run_tests,
    HandoffAction.OPEN_REVIEW: open_review,
    HandoffAction.QUEUE_RETRY: queue_retry,
    HandoffAction.QUEUE_REFINE: queue_refine,
    HandoffAction.QUEUE_QA: queue_qa,
}
