"""What a test run produced: per-case results, coverage, and why a run is not usable."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ReportStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the tests ran and at least one failed or errored
    ERROR = "error"  # the run itself is unusable: see TestReport.problem


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


MAX_REPORT_BYTES = 64 * 1024 * 1024


class ReportError(Exception):
    """A report file is missing, too large or not what it claims to be."""


@dataclass(frozen=True)
class CaseResult:
    name: str
    classname: str
    file: str
    outcome: Outcome
    duration: float
    message: str
    details: str

    @property
    def is_failing(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.ERROR)


@dataclass(frozen=True)
class FileCoverage:
    path: str
    line_rate: float
    lines_covered: int
    lines_valid: int


@dataclass(frozen=True)
class CoverageReport:
    line_rate: float
    lines_covered: int
    lines_valid: int
    branch_rate: float | None
    files: list[FileCoverage]


@dataclass(frozen=True)
class TestCounts:
    __test__ = False  # not a pytest test class

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, cases: list[CaseResult]) -> TestCounts:
        outcomes = [case.outcome for case in cases]
        return cls(
            total=len(outcomes),
            passed=outcomes.count(Outcome.PASSED),
            failed=outcomes.count(Outcome.FAILED),
            errors=outcomes.count(Outcome.ERROR),
            skipped=outcomes.count(Outcome.SKIPPED),
        )


@dataclass(frozen=True)
class TestReport:
    __test__ = False  # not a pytest test class

    status: ReportStatus
    summary: TestCounts
    cases: list[CaseResult]
    coverage: CoverageReport | None
    output: str
    exit_code: int | None
    timed_out: bool
    duration: float
    problem: str = ""  # why the status is "error"; empty otherwise
    warnings: list[str] = field(default_factory=list)

    @property
    def failing_cases(self) -> list[CaseResult]:
        return [case for case in self.cases if case.is_failing]


def clip(text: str, limit: int) -> str:
    """Shorten `text` to at most `limit` characters, keeping its start and (mostly) its end.

    The end gets the larger share: tracebacks and test output say what went wrong last.
    """
    if len(text) <= limit:
        return text
    # The longest marker this text can need, so the result never exceeds the limit.
    room = limit - len(_omission(len(text)))
    if room <= 0:
        return text[len(text) - limit :]
    head = room // 3
    tail = room - head
    return text[:head] + _omission(len(text) - head - tail) + text[-tail:]


def _omission(count: int) -> str:
    return f"\n… [{count} characters omitted] …\n"


def check_readable(path: Path) -> None:
    """Refuse a report that is missing, empty or too large to parse safely."""
    if not path.is_file():
        raise ReportError("was not written")
    size = path.stat().st_size
    if size == 0:
        raise ReportError("is empty")
    if size > MAX_REPORT_BYTES:
        raise ReportError(f"is too large ({size} bytes, limit {MAX_REPORT_BYTES})")
