"""Judging a finished test run and moving the subtask on: the tests-first gate lives here.

Red check (after Tara): the new tests must be collected and fail or error for the missing
behaviour; tests that already pass go back to Tara. Verify (after Devon): everything must
be green; a failure goes to the retry policy.
"""

from __future__ import annotations

from django.db import transaction

from orchestration.models import (
    EventKind,
    Stage,
    Subtask,
    SubtaskStatus,
    TestRun,
    TestRunPurpose,
    TestRunStatus,
    Trigger,
)
from orchestration.policy import policy_for
from orchestration.services import failures, handoffs_table, testing
from orchestration.services.events import event_record
from orchestration.testrunner import ReportStatus, TestReport

ACTOR = "test-runner"


def record_and_judge(
    test_run_id: int, report: TestReport, *, flaky: set[tuple[str, str]], commit_sha: str
) -> None:
    test_run = TestRun.objects.select_related("agent_run", "project").get(pk=test_run_id)
    new_files: set[str] = set()
    if test_run.purpose == TestRunPurpose.RED_CHECK and report.status != ReportStatus.ERROR:
        new_files = testing.new_test_files(test_run)  # git, outside the transaction
    with transaction.atomic():
        test_run, subtask = testing.lock_for_judging(test_run_id)
        if test_run.status != TestRunStatus.RUNNING:
            return  # judged by an earlier delivery
        if commit_sha:
            TestRun.objects.filter(pk=test_run.pk).update(commit_sha=commit_sha)
            test_run.commit_sha = commit_sha
        testing.store_report(test_run, report, flaky)
        finished = event_record(
            workspace_id=test_run.workspace_id,
            kind=EventKind.TESTRUN_FINISHED,
            message=_summary(test_run, report, subtask),
            actor=ACTOR,
            subtask=subtask,
            data={
                "test_run": str(test_run.code),
                "status": str(report.status),
                "purpose": test_run.purpose,
                "passed": report.summary.passed,
                "failed": report.summary.failed,
                "errors": report.summary.errors,
                "failing": [f"{c.classname}::{c.name}" for c in report.failing_cases][:50],
            },
        )
        if subtask is None:
            return
        if report.status == ReportStatus.ERROR:
            _unusable(test_run, subtask, report, finished.pk)
        elif test_run.purpose == TestRunPurpose.RED_CHECK:
            _judge_red(subtask, report, new_files, finished.pk)
        else:
            _judge_verify(subtask, report, finished.pk)


def _summary(test_run: TestRun, report: TestReport, subtask: Subtask | None) -> str:
    counts = report.summary
    who = subtask.key if subtask else test_run.project.name
    what = test_run.get_purpose_display().lower()
    if report.status == ReportStatus.ERROR:
        return f"{who}: {what} unusable: {report.problem}"
    return (
        f"{who}: {what} {report.status}: {counts.passed} passed, {counts.failed} failed, "
        f"{counts.errors} errors, {counts.skipped} skipped"
    )


def _judge_red(subtask: Subtask, report: TestReport, new_files: set[str], cause: int) -> None:
    if subtask.status != SubtaskStatus.IN_PROGRESS or subtask.stage != Stage.TESTS:
        return
    new_cases = testing.cases_in(report, new_files)
    failing = [case for case in new_cases if case.is_failing]
    if not new_cases:
        reason = "no test from your changes was collected" + (
            f" (changed: {', '.join(sorted(new_files))})" if new_files else ""
        )
    elif not failing:
        reason = (
            f"your {len(new_cases)} new tests pass before any implementation, so they do not "
            "test the requirement; write tests that fail until the behaviour exists"
        )
    else:
        event_record(
            workspace_id=subtask.workspace_id,
            kind=EventKind.TESTS_RED,
            message=f"{subtask.key}: {len(failing)} of {len(new_cases)} new tests are red",
            actor=ACTOR,
            subtask=subtask,
            data={"failing": [f"{c.classname}::{c.name}" for c in failing][:50]},
        )
        handoffs_table.fire(Trigger.TESTS_READY, subtask, cause)
        return
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.TESTS_NOT_RED,
        message=f"{subtask.key}: refused tests: {reason}",
        actor=ACTOR,
        subtask=subtask,
        data={"reason": reason},
    )
    failures.tests_not_red(subtask, cause, reason)


def _judge_verify(subtask: Subtask, report: TestReport, cause: int) -> None:
    if subtask.status != SubtaskStatus.TESTING:
        return
    if report.status == ReportStatus.PASSED:
        handoffs_table.fire(Trigger.TESTS_PASSED, subtask, cause)
    else:
        handoffs_table.fire(Trigger.TESTS_FAILED, subtask, cause)


def _unusable(test_run: TestRun, subtask: Subtask, report: TestReport, cause: int) -> None:
    """The run could not say anything (timeout, no report): infrastructure, not the agent."""
    policy = policy_for(subtask.project)
    used = failures.bump(subtask, "infra_failures")
    if used >= policy.max_infra_failures:
        failures.escalate(subtask, f"the test run is unusable {used} times: {report.problem}")
        return
    testing.apply_testrun_queue(
        subtask=subtask,
        purpose=test_run.purpose,
        cause_event_id=None,
        agent_run=test_run.agent_run,
        countdown=policy.backoff(used).total_seconds(),
    )
