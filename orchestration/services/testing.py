"""Test runs: the red check of Tara's new tests, and the verification of Devon's work.

A TestRun row is queued by a handoff (unique per causing event), executed by a worker on a
detached worktree at the branch head, stored with every case, and judged in one
transaction that also moves the subtask on.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

import gitops
from orchestration import gitflow
from orchestration.lock_objects import lock_subtask
from orchestration.models import (
    AgentRun,
    CoverageFile,
    EventKind,
    FlakyTest,
    Project,
    Subtask,
    TestCaseResult,
    TestRun,
    TestRunPurpose,
    TestRunStatus,
)
from orchestration.policy import policy_for
from orchestration.processes import clean_environment
from orchestration.services.effects import enqueue_on_commit, with_db_retry
from orchestration.services.events import event_record
from orchestration.testrunner import ReportStatus, TestReport, failure_context, run_tests

log = logging.getLogger(__name__)


def apply_testrun_queue(
    *,
    subtask: Subtask,
    purpose: str,
    cause_event_id: int | None,
    agent_run: AgentRun | None,
    countdown: float = 0,
) -> TestRun | None:
    """Queue a test run inside the caller's transaction; None if this cause already did."""
    try:
        with transaction.atomic():
            test_run = TestRun.objects.create(
                workspace_id=subtask.workspace_id,
                project_id=subtask.project_id,
                feature_id=subtask.feature_id,
                subtask=subtask,
                agent_run=agent_run,
                purpose=purpose,
                branch=subtask.feature.branch if subtask.feature else "",
                cause_event_id=cause_event_id,
            )
    except IntegrityError:
        return None
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.TESTRUN_QUEUED,
        message=f"{subtask.key}: {test_run.get_purpose_display().lower()} queued",
        actor="orchestrator",
        subtask=subtask,
        data={"test_run": str(test_run.code), "purpose": purpose},
    )
    from orchestration import tasks

    # A backed-off retry waits in the broker; the reaper re-sends it if that message is lost.
    TestRun.objects.filter(pk=test_run.pk).update(
        dispatched_at=timezone.now() + timezone.timedelta(seconds=countdown)
    )
    enqueue_on_commit(tasks.execute_test_run, test_run.pk, countdown=countdown)
    return test_run


def testrun_execute(test_run_id: int, *, worker: str) -> str:
    test_run = _claim(test_run_id, worker)
    if test_run is None:
        return "claimed elsewhere or done"
    project = test_run.project
    policy = policy_for(project)
    try:
        with (
            gitflow.checkout(
                project, test_run.branch or project.default_branch, f"test-{test_run.code}"
            ) as work,
            tempfile.TemporaryDirectory(prefix="cm-test-") as home,
        ):
            TestRun.objects.filter(pk=test_run.pk).update(commit_sha=work.base_sha)
            report = _run(project, work.path, Path(home), policy.test_timeout_seconds)
            flaky: set[tuple[str, str]] = set()
            if (
                test_run.purpose == TestRunPurpose.VERIFY
                and report.status == ReportStatus.FAILED
                and policy.flaky_reruns > 0
            ):
                report, flaky = _rerun_for_flakes(project, work.path, Path(home), policy, report)
            sha = work.base_sha
    except gitops.GitError as exc:
        report, flaky, sha = _unusable(f"git: {exc}"), set(), ""
    from orchestration.services import judging

    with_db_retry(
        lambda: judging.record_and_judge(test_run.pk, report, flaky=flaky, commit_sha=sha)
    )
    return report.status


def _claim(test_run_id: int, worker: str) -> TestRun | None:
    now = timezone.now()
    project = Project.objects.filter(test_runs__pk=test_run_id).first()
    if project is None:
        return None
    # The run holds its lease for the whole test command (no heartbeat): the timeout plus a
    # margin for checkout and storing the report.
    lease = timezone.timedelta(seconds=policy_for(project).test_timeout_seconds * 2 + 120)
    claimed = TestRun.objects.filter(pk=test_run_id, status=TestRunStatus.QUEUED).update(
        status=TestRunStatus.RUNNING,
        started_at=now,
        lease_expires_at=now + lease,
        claimed_by=worker[:120],
    )
    if not claimed:
        return None
    return TestRun.objects.select_related("project", "subtask").get(pk=test_run_id)


def _run(project, worktree: Path, home: Path, timeout: int) -> TestReport:
    return run_tests(
        command=project.test_command,
        worktree=worktree,
        timeout=timeout,
        env=clean_environment({}, home=home),
    )


def _rerun_for_flakes(project, worktree, home, policy, first: TestReport):
    """Re-run once on the same commit: tests that fail only the first time are flaky."""
    second = _run(project, worktree, home, policy.test_timeout_seconds)
    if second.status == ReportStatus.ERROR:
        return first, set()
    failing_again = {(c.classname, c.name) for c in second.failing_cases}
    flaky = {(c.classname, c.name) for c in first.failing_cases} - failing_again
    if not flaky:
        return first, set()
    return second, flaky


def _unusable(problem: str) -> TestReport:
    from orchestration.testrunner import TestCounts

    return TestReport(
        status=ReportStatus.ERROR,
        summary=TestCounts(),
        cases=[],
        coverage=None,
        output="",
        exit_code=None,
        timed_out=False,
        duration=0.0,
        problem=problem,
    )


def store_report(test_run: TestRun, report: TestReport, flaky: set[tuple[str, str]]) -> None:
    """Write a report's counts, cases and coverage onto a test run (caller's transaction)."""
    counts = report.summary
    coverage = report.coverage
    TestRun.objects.filter(pk=test_run.pk).update(
        status={
            ReportStatus.PASSED: TestRunStatus.PASSED,
            ReportStatus.FAILED: TestRunStatus.FAILED,
        }.get(report.status, TestRunStatus.ERROR),
        total=counts.total,
        passed=counts.passed,
        failed=counts.failed,
        errors=counts.errors,
        skipped=counts.skipped,
        flaky=len(flaky),
        exit_code=report.exit_code,
        timed_out=report.timed_out,
        duration_seconds=report.duration,
        coverage_percent=round(coverage.line_rate * 100, 2) if coverage else None,
        problem="; ".join(filter(None, [report.problem, *report.warnings])),
        output=report.output[-50_000:],
        failure_context=failure_context(report) if report.status != ReportStatus.PASSED else "",
        finished_at=timezone.now(),
        lease_expires_at=None,
    )
    TestCaseResult.objects.bulk_create(
        TestCaseResult(
            test_run=test_run,
            name=case.name[:500],
            classname=case.classname[:500],
            file=case.file[:500],
            outcome=str(case.outcome),
            duration_seconds=case.duration,
            message=case.message,
            details=case.details[:20_000],
            flaky=(case.classname, case.name) in flaky,
        )
        for case in report.cases
    )
    if coverage:
        CoverageFile.objects.bulk_create(
            CoverageFile(
                test_run=test_run,
                path=item.path[:500],
                lines_valid=item.lines_valid,
                lines_covered=item.lines_covered,
                line_rate=item.line_rate,
            )
            for item in coverage.files
        )
    for classname, name in sorted(flaky):
        _remember_flaky(test_run, classname, name)


def _remember_flaky(test_run: TestRun, classname: str, name: str) -> None:
    now = timezone.now()
    updated = FlakyTest.objects.filter(
        project_id=test_run.project_id, classname=classname[:500], name=name[:500]
    ).update(flake_count=F("flake_count") + 1, last_seen_at=now, last_commit=test_run.commit_sha)
    if not updated:
        FlakyTest.objects.get_or_create(
            project_id=test_run.project_id,
            classname=classname[:500],
            name=name[:500],
            defaults={"last_commit": test_run.commit_sha, "last_seen_at": now},
        )
    event_record(
        workspace_id=test_run.workspace_id,
        kind=EventKind.FLAKY,
        message=f"flaky test {classname}::{name}: failed, then passed on the same commit",
        actor="test-runner",
        subtask=test_run.subtask,
        data={"test": f"{classname}::{name}", "commit": test_run.commit_sha},
    )


def new_test_files(test_run: TestRun) -> set[str]:
    """Files Tara's run changed: the tests the red check is about."""
    run = test_run.agent_run
    if run is None or not run.result.get("commit") or not run.result.get("base"):
        return set()
    return set(gitflow.changed_paths(test_run.project, run.result["base"], run.result["commit"]))


def cases_in(report: TestReport, files: set[str]) -> list:
    """The report's cases that belong to `files`.

    A module that fails to import is reported by pytest as one erroring case with no file
    and the module's dotted name ("tests.test_slug"), so dotted names count too.
    """
    wanted = {f.removeprefix("./") for f in files}
    return [case for case in report.cases if wanted & _case_paths(case)]


def _case_paths(case) -> set[str]:
    paths = {case.file.removeprefix("./")} if case.file else set()
    for dotted in (case.classname, case.name):
        if dotted and "/" not in dotted:
            paths.add(dotted.replace(".", "/") + ".py")
    return paths


def lock_for_judging(test_run_id: int) -> tuple[TestRun, Subtask | None]:
    test_run = TestRun.objects.select_related("agent_run", "project").get(pk=test_run_id)
    subtask = lock_subtask(test_run.subtask_id) if test_run.subtask_id else None
    return test_run, subtask
