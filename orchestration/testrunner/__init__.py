"""Run a project's tests and turn their JUnit and Cobertura reports into results."""

from orchestration.testrunner.cobertura import parse_cobertura
from orchestration.testrunner.context import failure_context
from orchestration.testrunner.junit import parse_junit
from orchestration.testrunner.report import (
    CaseResult,
    CoverageReport,
    FileCoverage,
    Outcome,
    ReportError,
    ReportStatus,
    TestCounts,
    TestReport,
)
from orchestration.testrunner.runner import (
    COVERAGE_ENV,
    DEFAULT_COVERAGE_PATH,
    DEFAULT_JUNIT_PATH,
    JUNIT_ENV,
    run_tests,
)

__all__ = [
    "COVERAGE_ENV",
    "DEFAULT_COVERAGE_PATH",
    "DEFAULT_JUNIT_PATH",
    "JUNIT_ENV",
    "CaseResult",
    "CoverageReport",
    "FileCoverage",
    "Outcome",
    "ReportError",
    "ReportStatus",
    "TestCounts",
    "TestReport",
    "failure_context",
    "parse_cobertura",
    "parse_junit",
    "run_tests",
]
