"""Parse Cobertura coverage XML (coverage.py's `coverage xml`, JaCoCo converters, Istanbul)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

from orchestration.testrunner.report import (
    CoverageReport,
    FileCoverage,
    ReportError,
    check_readable,
)


def parse_cobertura(path: Path) -> CoverageReport:
    """Return the totals and per-file line coverage of the Cobertura report at `path`.

    Raises ReportError when the report is missing, too large or malformed; its message
    completes the sentence "the report <path> …".
    """
    check_readable(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise ReportError(f"is not valid XML: {exc}") from exc
    if root.tag != "coverage":
        raise ReportError(f"is not Cobertura XML: its root element is <{root.tag}>")
    files = _files(root)
    covered = _int(root.get("lines-covered"))
    valid = _int(root.get("lines-valid"))
    if covered is None or valid is None:
        covered = sum(file.lines_covered for file in files)
        valid = sum(file.lines_valid for file in files)
    line_rate = _float(root.get("line-rate"))
    return CoverageReport(
        line_rate=line_rate if line_rate is not None else _rate(covered, valid),
        lines_covered=covered,
        lines_valid=valid,
        branch_rate=_branch_rate(root),
        files=files,
    )


def _files(root: ElementTree.Element) -> list[FileCoverage]:
    # Several <class> elements can share one file (Java inner classes, Istanbul splits).
    hits: defaultdict[str, dict[int, bool]] = defaultdict(dict)
    stated_rates: dict[str, float] = {}
    for element in root.iter("class"):
        filename = element.get("filename") or element.get("name") or ""
        lines = hits[filename]
        rate = _float(element.get("line-rate"))
        if rate is not None:
            stated_rates.setdefault(filename, rate)
        for line in element.iter("line"):
            number = _int(line.get("number"))
            if number is not None:
                is_hit = (_int(line.get("hits")) or 0) > 0
                lines[number] = lines.get(number, False) or is_hit
    return [_file(name, lines, stated_rates.get(name)) for name, lines in sorted(hits.items())]


def _file(path: str, lines: dict[int, bool], stated_rate: float | None) -> FileCoverage:
    covered = sum(lines.values())
    valid = len(lines)
    # Without <line> elements, only the stated rate says anything about the file.
    rate = stated_rate if not lines and stated_rate is not None else _rate(covered, valid)
    return FileCoverage(path=path, line_rate=rate, lines_covered=covered, lines_valid=valid)


def _branch_rate(root: ElementTree.Element) -> float | None:
    # coverage.py writes branch-rate="0" when branches were not measured at all.
    if root.get("branches-valid") == "0":
        return None
    return _float(root.get("branch-rate"))


def _rate(covered: int, valid: int) -> float:
    # Nothing to cover counts as fully covered, as coverage.py reports it.
    return covered / valid if valid else 1.0


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
