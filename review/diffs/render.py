"""Stages 4 and 5 of the diff pipeline: cut highlighted files into hunks, render table rows.

Rows are planned first as cheap tuples (which diff line goes in which row, in unified or
side-by-side layout) and turned into HTML only for the chunk asked for, so the rows of a
50,000-line file are never all built to show its first screen.

Every row is a tuple (html, old line number, new line number): the view splices comment
threads in after the row of a thread's last line.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from review.diffs.parse import DiffLine, FileDiff, Hunk

UNIFIED = "unified"
SPLIT = "split"
VIEWS = (UNIFIED, SPLIT)
CHUNK_ROWS = 1500  # rows per lazily loaded chunk of one file

Row = tuple[str, int | None, int | None]
_KIND_CLASS = {"+": "add", "-": "del", " ": "ctx"}
_MARK = {"+": "+", "-": "&minus;", " ": "&nbsp;"}
_NO_NEWLINE = '<span class="nonl" title="No newline at end of file">&#8856;</span>'


@dataclass(frozen=True)
class Sources:
    """The highlighted lines of the file's two sides (None: use the diff's own text)."""

    old: list[str] | None = None
    new: list[str] | None = None
    new_total: int | None = None  # lines in the new file, to offer the context after the end


@dataclass(frozen=True)
class Chunk:
    rows: list[Row]
    has_more: bool


def plan(file: FileDiff, view: str, sources: Sources) -> list[tuple]:
    """The file's rows as specs: ("gap", old, new, count), ("hunk", Hunk), lines."""
    specs: list[tuple] = []
    old_next, new_next = 1, 1
    for hunk in file.hunks:
        start_new = hunk.new_start if hunk.new_count else hunk.new_start + 1
        start_old = hunk.old_start if hunk.old_count else hunk.old_start + 1
        hidden = start_new - new_next
        if hidden > 0 and file.status not in ("added", "deleted"):
            specs.append(("gap", old_next, new_next, hidden))
        specs.append(("hunk", hunk))
        if view == SPLIT:
            specs.extend(_split(hunk))
        else:
            specs.extend(("u", line) for line in hunk.lines)
        old_next = start_old + hunk.old_count
        new_next = start_new + hunk.new_count
    if sources.new_total is not None and file.hunks and file.status not in ("added", "deleted"):
        hidden = sources.new_total - new_next + 1
        if hidden > 0:
            specs.append(("gap", old_next, new_next, hidden))
    return specs


def _split(hunk: Hunk) -> list[tuple]:
    """Side-by-side rows: a run of deletions pairs up with the additions that follow it."""
    lines = hunk.lines
    if not hunk.old_count:  # only additions (an added file): no pairing to do
        return [("s", None, line) for line in lines]
    if not hunk.new_count:
        return [("s", line, None) for line in lines]
    rows: list[tuple] = []
    deleted: list[DiffLine] = []
    added: list[DiffLine] = []

    def flush() -> None:
        for index in range(max(len(deleted), len(added))):
            left = deleted[index] if index < len(deleted) else None
            right = added[index] if index < len(added) else None
            rows.append(("s", left, right))
        deleted.clear()
        added.clear()

    for line in lines:
        kind = line.kind
        if kind == "-":
            if added:
                flush()
            deleted.append(line)
        elif kind == "+":
            added.append(line)
        else:
            if deleted or added:
                flush()
            rows.append(("s", line, line))
    flush()
    return rows


def render_chunk(
    specs: list[tuple], chunk: int, sources: Sources, view: str, *, size: int = CHUNK_ROWS
) -> Chunk:
    start = chunk * size
    selected = specs[start : start + size]
    render = _split_row if view == SPLIT else _unified_row
    rows = [render(spec, sources) for spec in selected]
    return Chunk(rows=rows, has_more=start + size < len(specs))


def context_rows(
    old_start: int, new_start: int, count: int, sources: Sources, view: str
) -> list[Row]:
    """Rows for hidden context lines (the same on both sides), revealed on request."""
    rows = []
    lines = sources.new or []
    for offset in range(count):
        new_no, old_no = new_start + offset, old_start + offset
        if new_no > len(lines):
            break
        line = DiffLine(" ", old_no, new_no, "")
        spec = ("s", line, line) if view == SPLIT else ("u", line)
        rows.append((_split_row if view == SPLIT else _unified_row)(spec, sources))
    return rows


def _code(line: DiffLine, side: str, sources: Sources) -> str:
    lines = sources.old if side == "old" else sources.new
    number = line.old_no if side == "old" else line.new_no
    if lines is not None and number is not None and 0 < number <= len(lines):
        html = lines[number - 1]
    else:
        html = escape(line.text, quote=False)
    return html + _NO_NEWLINE if line.no_newline else html


def _number(side: str, number: int | None) -> str:
    if number is None:
        return '<td class="ln"></td>'
    return f'<td class="ln" data-s="{side}" data-l="{number}">{number}</td>'


def _unified_row(spec: tuple, sources: Sources) -> Row:
    tag = spec[0]
    if tag == "gap":
        return _gap(spec, 3), None, None
    if tag == "hunk":
        return _hunk_header(spec[1], 3), None, None
    line: DiffLine = spec[1]
    side = "old" if line.kind == "-" else "new"
    html = (
        f'<tr class="d-{_KIND_CLASS[line.kind]}">'
        f"{_number('old', line.old_no if line.kind != '+' else None)}"
        f"{_number('new', line.new_no if line.kind != '-' else None)}"
        f'<td class="code"><span class="mk">{_MARK[line.kind]}</span>'
        f"{_code(line, side, sources)}</td></tr>"
    )
    return html, (line.old_no if line.kind != "+" else None), line.new_no


def _split_row(spec: tuple, sources: Sources) -> Row:
    tag = spec[0]
    if tag == "gap":
        return _gap(spec, 4), None, None
    if tag == "hunk":
        return _hunk_header(spec[1], 4), None, None
    left: DiffLine | None = spec[1]
    right: DiffLine | None = spec[2]
    if left is not None and left is right:  # context: the same line on both sides
        code_left, code_right = _code(left, "old", sources), _code(right, "new", sources)
        html = (
            f'<tr class="d-ctx">{_number("old", left.old_no)}<td class="code">{code_left}</td>'
            f'{_number("new", right.new_no)}<td class="code">{code_right}</td></tr>'
        )
        return html, left.old_no, right.new_no
    old_no = left.old_no if left is not None else None
    new_no = right.new_no if right is not None else None
    old_cell = (
        f'<td class="code del">{_code(left, "old", sources)}</td>'
        if left is not None
        else '<td class="code empty"></td>'
    )
    new_cell = (
        f'<td class="code add">{_code(right, "new", sources)}</td>'
        if right is not None
        else '<td class="code empty"></td>'
    )
    html = (
        f'<tr class="d-chg">{_number("old", old_no)}{old_cell}'
        f"{_number('new', new_no)}{new_cell}</tr>"
    )
    return html, old_no, new_no


def _hunk_header(hunk: Hunk, columns: int) -> str:
    section = escape(hunk.section, quote=False)
    return (
        f'<tr class="d-hunk"><td colspan="{columns}">@@ -{hunk.old_start},{hunk.old_count} '
        f'+{hunk.new_start},{hunk.new_count} @@ <span class="sec">{section}</span></td></tr>'
    )


def _gap(spec: tuple, columns: int) -> str:
    _, old_start, new_start, count = spec
    noun = "line" if count == 1 else "lines"
    return (
        f'<tr class="d-gap"><td colspan="{columns}"><button type="button" class="expand" '
        f'data-o="{old_start}" data-n="{new_start}" data-c="{count}">'
        f"&#8597; Show {count} hidden {noun}</button></td></tr>"
    )
