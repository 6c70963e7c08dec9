"""Condense a test report into what a developer agent's retry needs to read."""

from __future__ import annotations

from orchestration.testrunner.report import CaseResult, ReportStatus, TestReport, clip

CASE_DETAILS_LIMIT = 3_000
CASE_MESSAGE_LIMIT = 500


def failure_context(report: TestReport, limit_chars: int = 8000) -> str:
    """Return the failing tests with their messages and details, then the output's tail.

    The result never exceeds `limit_chars`. The failing tests come first because they
    say what to fix; the output only gets what they leave, and at least a quarter.
    """
    headline = _headline(report)
    budget = limit_chars - len(headline) - 2
    output_share = min(len(report.output), budget // 4)
    cases = _cases_section(report.failing_cases, budget - output_share)
    sections = [headline, cases] if cases else [headline]
    room = limit_chars - sum(len(section) + 2 for section in sections)
    output = _output_section(report.output, room)
    if output:
        sections.append(output)
    return "\n\n".join(sections)[:limit_chars]


def _headline(report: TestReport) -> str:
    counts = report.summary
    tally = (
        f"{counts.failed} failed, {counts.errors} errored, {counts.passed} passed, "
        f"{counts.skipped} skipped of {counts.total}"
    )
    if report.status == ReportStatus.ERROR:
        return f"The test run is unusable: {report.problem}. ({tally})"
    if report.status == ReportStatus.FAILED:
        return f"Tests failed: {tally}."
    return f"Tests passed: {tally}."


def _cases_section(cases: list[CaseResult], budget: int) -> str:
    if not cases or budget <= 0:
        return ""
    title = "Failing tests:"
    used = len(title)
    per_case = min(CASE_DETAILS_LIMIT, max(budget // len(cases), 200))
    blocks = [title]
    for index, case in enumerate(cases):
        block = _case_block(case, per_case)
        if used + 1 + len(block) > budget:
            rest = ", ".join(_case_label(other) for other in cases[index:])
            note = f"… {len(cases) - index} more failing tests not shown: {rest}"
            blocks.append(note[: max(budget - used - 1, 0)])
            break
        blocks.append(block)
        used += 1 + len(block)
    return "\n".join(blocks)


def _case_block(case: CaseResult, limit: int) -> str:
    lines = [f"[{case.outcome}] {_case_label(case)}" + (f" ({case.file})" if case.file else "")]
    if case.message:
        lines.append(clip(case.message, CASE_MESSAGE_LIMIT))
    head = "\n".join(lines)
    if case.details:
        head += "\n" + clip(case.details, max(limit - len(head) - 1, 0))
    return head


def _case_label(case: CaseResult) -> str:
    return f"{case.classname}.{case.name}" if case.classname else case.name


def _output_section(output: str, room: int) -> str:
    title = "Output (end):\n"
    text = output.strip()
    if not text or room <= len(title) + 1:
        return ""
    keep = room - len(title)
    if len(text) > keep:
        text = "…" + text[len(text) - keep + 1 :]
    return title + text
