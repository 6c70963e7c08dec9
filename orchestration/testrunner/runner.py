"""Run a project's test command in a worktree and judge the run from its JUnit report."""

from __future__ import annotations

from pathlib import Path

from orchestration.processes import ProcessError, ProcessResult, run_process
from orchestration.testrunner.cobertura import parse_cobertura
from orchestration.testrunner.junit import parse_junit
from orchestration.testrunner.report import (
    CaseResult,
    CoverageReport,
    Outcome,
    ReportError,
    ReportStatus,
    TestCounts,
    TestReport,
)

DEFAULT_JUNIT_PATH = ".codemaestro/junit.xml"
DEFAULT_COVERAGE_PATH = ".codemaestro/coverage.xml"
JUNIT_ENV = "CODEMAESTRO_JUNIT_XML"
COVERAGE_ENV = "CODEMAESTRO_COVERAGE_XML"
OUTPUT_CAP = 200_000


def run_tests(
    *,
    command: str,
    worktree: Path,
    timeout: float,
    env: dict[str, str],
    junit_path: str = DEFAULT_JUNIT_PATH,
    coverage_path: str = DEFAULT_COVERAGE_PATH,
    output_cap: int = OUTPUT_CAP,
) -> TestReport:
    """Run `command` in `worktree` and report every test case and the coverage.

    The command must write JUnit XML to `junit_path` (and may write Cobertura XML to
    `coverage_path`), both relative to the worktree and also passed as absolute paths in
    $CODEMAESTRO_JUNIT_XML and $CODEMAESTRO_COVERAGE_XML. `env` is the command's whole
    environment: build it with `clean_environment`. Never raises for what the command
    does: an unusable run is a report with status "error" and a `problem`.
    """
    if not worktree.is_dir():
        return _unusable(f"the worktree {worktree} does not exist")
    junit_file, coverage_file = worktree / junit_path, worktree / coverage_path
    for name, file in ((junit_path, junit_file), (coverage_path, coverage_file)):
        if not _is_inside(file, worktree):
            return _unusable(f"the report path {name} is outside the worktree")
    try:
        _remove_stale_reports(junit_file, coverage_file)
        result = run_process(
            command,
            cwd=worktree,
            env={**env, JUNIT_ENV: str(junit_file), COVERAGE_ENV: str(coverage_file)},
            timeout=timeout,
            output_cap=output_cap,
        )
    except ProcessError as exc:
        return _unusable(str(exc))
    except OSError as exc:  # a report path taken by a directory, a read-only worktree
        return _unusable(f"the report files cannot be prepared: {exc}")
    return _judge(
        result,
        worktree=worktree,
        timeout=timeout,
        junit_path=junit_path,
        coverage_path=coverage_path,
    )


def _remove_stale_reports(*files: Path) -> None:
    # A report left by an earlier run must never be mistaken for this run's.
    for file in files:
        file.unlink(missing_ok=True)
        file.parent.mkdir(parents=True, exist_ok=True)


def _judge(
    result: ProcessResult, *, worktree: Path, timeout: float, junit_path: str, coverage_path: str
) -> TestReport:
    warnings: list[str] = []
    cases, junit_problem = _read_junit(worktree, junit_path)
    coverage = _read_coverage(worktree, coverage_path, warnings)
    failing = any(case.is_failing for case in cases)
    problem = _problem(result, cases, junit_problem, timeout=timeout)
    if cases and not problem and all(case.outcome == Outcome.SKIPPED for case in cases):
        warnings.append("every test was skipped")
    status = (
        ReportStatus.ERROR if problem else ReportStatus.FAILED if failing else ReportStatus.PASSED
    )
    return TestReport(
        status=status,
        summary=TestCounts.of(cases),
        cases=cases,
        coverage=coverage,
        output=result.output,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        duration=result.duration_seconds,
        problem=problem,
        warnings=warnings,
    )


def _problem(
    result: ProcessResult, cases: list[CaseResult], junit_problem: str, *, timeout: float
) -> str:
    """Say why the run cannot be trusted, or return "" when its cases decide the status."""
    if result.timed_out:
        return f"the test command timed out after {timeout:g} s"
    if result.cwd_removed:
        return "the worktree disappeared while the test command ran"
    if junit_problem:
        return f"{junit_problem} ({_ending(result)})"
    if not cases:
        return f"the JUnit report lists no test cases: 0 tests collected ({_ending(result)})"
    if not any(case.is_failing for case in cases) and result.exit_code != 0:
        return f"{_ending(result)} although every test passed"
    return ""


def _ending(result: ProcessResult) -> str:
    if result.exit_code is None:
        return f"the test command was killed by {result.killed_by}"
    return f"the test command exited {result.exit_code}"


def _read_junit(worktree: Path, junit_path: str) -> tuple[list[CaseResult], str]:
    file = worktree / junit_path
    if file.exists() and not _is_inside(file, worktree):
        return [], f"the JUnit report {junit_path} links outside the worktree"
    try:
        return parse_junit(file, root=worktree), ""
    except ReportError as exc:
        return [], f"the JUnit report {junit_path} {exc}"


def _read_coverage(
    worktree: Path, coverage_path: str, warnings: list[str]
) -> CoverageReport | None:
    file = worktree / coverage_path
    if not file.exists():
        return None  # coverage is optional
    if not _is_inside(file, worktree):
        warnings.append(f"the coverage report {coverage_path} links outside the worktree")
        return None
    try:
        return parse_cobertura(file)
    except ReportError as exc:
        warnings.append(f"the coverage report {coverage_path} {exc}")
        return None


def _is_inside(path: Path, root: Path) -> bool:
    # Resolving follows symlinks: a report must not lead the worker to read other files.
    return path.resolve().is_relative_to(root.resolve())


def _unusable(problem: str) -> TestReport:
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
