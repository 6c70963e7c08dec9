"""Parse JUnit XML (as written by pytest, unittest-xml-reporting, Maven, Jest…) into cases."""

from __future__ import annotations

from pathlib import Path
from typing import cast
from xml.etree import ElementTree

from junitparser import Attr, Error, Failure, JUnitXml, Skipped, TestCase, TestSuite
from junitparser.junitparser import FinalResult

from orchestration.testrunner.report import CaseResult, Outcome, ReportError, check_readable, clip

MESSAGE_LIMIT = 2_000
DETAILS_LIMIT = 20_000


class _Case(TestCase):
    # Written by xunit1-style reporters (pytest's legacy family, Jest, many Java tools).
    file = Attr()


class _Suite(TestSuite):
    testcase = _Case


class _Report(JUnitXml):
    testsuite = _Suite


def parse_junit(path: Path, *, root: Path | None = None) -> list[CaseResult]:
    """Return every test case in the JUnit report at `path`, in report order.

    Accepts a <testsuites> document or a single <testsuite>. `root` is the project
    directory, used to find the file a case belongs to when the report does not say.
    Raises ReportError when the report is missing, too large or malformed; its message
    completes the sentence "the report <path> …".
    """
    check_readable(path)
    try:
        element = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise ReportError(f"is not valid XML: {exc}") from exc
    if element.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"is not JUnit XML: its root element is <{element.tag}>")
    # junitparser annotates fromroot() with its own Element type but takes an etree one.
    report = _Report.fromroot(element)  # type: ignore[arg-type]
    return [_case_result(cast(_Case, case), root) for suite in report for case in suite]


def _case_result(case: _Case, root: Path | None) -> CaseResult:
    outcome, results = _outcome(case)
    primary = results[0] if results else None
    message = (primary.message or primary.type or "") if primary else ""
    texts = [result.text for result in results]
    if outcome in (Outcome.FAILED, Outcome.ERROR):
        # Java and JavaScript reporters keep what the test printed next to the results.
        texts += [_labelled("stdout", case.system_out), _labelled("stderr", case.system_err)]
    details = "\n\n".join(text.strip() for text in texts if text and text.strip())
    classname = case.classname or ""
    return CaseResult(
        name=case.name or "",
        classname=classname,
        file=case.file or _file_from_classname(classname, root),
        outcome=outcome,
        duration=_duration(case),
        message=clip(message.strip(), MESSAGE_LIMIT),
        details=clip(details, DETAILS_LIMIT),
    )


# A failed assertion is the test's verdict; an error in teardown after it is secondary.
_PRECEDENCE = ((Failure, Outcome.FAILED), (Error, Outcome.ERROR), (Skipped, Outcome.SKIPPED))


def _outcome(case: _Case) -> tuple[Outcome, list[FinalResult]]:
    """Return the case's outcome and its results, the ones deciding the outcome first."""
    results: list[FinalResult] = list(case.result)
    for kind, outcome in _PRECEDENCE:
        if any(isinstance(result, kind) for result in results):
            ordered = sorted(results, key=lambda result: not isinstance(result, kind))
            # A skip marker next to a failure says nothing about the failure.
            return outcome, [
                result
                for result in ordered
                if outcome == Outcome.SKIPPED or not isinstance(result, Skipped)
            ]
    return Outcome.PASSED, []


def _labelled(stream: str, text: str | None) -> str | None:
    return f"--- captured {stream} ---\n{text.strip()}" if text and text.strip() else None


def _duration(case: _Case) -> float:
    try:
        return case.time or 0.0
    except ValueError:  # a time attribute that is not a number
        return 0.0


def _file_from_classname(classname: str, root: Path | None) -> str:
    """Guess the file of a case from a dotted classname like `tests.test_api.TestList`."""
    if not classname:
        return ""
    parts = classname.split(".")
    if root is not None:
        for end in range(len(parts), 0, -1):
            candidate = "/".join(parts[:end]) + ".py"
            if (root / candidate).is_file():
                return candidate
    # Python classnames end with capitalised class names after the module path.
    while len(parts) > 1 and parts[-1][:1].isupper():
        parts.pop()
    return "/".join(parts) + ".py"
