"""Stage 3 of the diff pipeline: highlight a whole file with pygments, one HTML string a line.

Whole files, not hunks: a hunk can start inside a multi-line string or comment, and only
the full text lexes right. Tokens spanning lines are split at each newline so every line is
well-formed HTML on its own, ready to be cut into hunks.

A pathological file must not stall a request: files over a size or line-length threshold
are not lexed at all, and lexing stops at a time budget (checked between tokens). Either
way the caller gets `None` and shows the file as escaped plain text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from html import escape

from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_for_filename
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

MAX_BYTES = 1_000_000
# Lexing runs at 15-25k lines/s: a file past this would hold its first view for too long,
# so it is shown as plain text (its lines stay numbered and commentable).
MAX_LINES = 5_000
MAX_LINE_LENGTH = 3_000  # minified bundles and data blobs: costly to lex, useless to colour
TIME_BUDGET_SECONDS = 0.5
_CHECK_EVERY = 512  # tokens between two looks at the clock


@dataclass(frozen=True)
class Highlighted:
    """A file's lines as HTML (escaped, with spans), or plain escaped text and why."""

    lines: list[str]
    highlighted: bool
    reason: str = ""  # why not highlighted: "too large", "time budget", "no lexer"


def plain_lines(text: str) -> list[str]:
    return [escape(line, quote=False) for line in text.split("\n")]


@lru_cache(maxsize=512)
def lexer_for(path: str) -> Lexer | None:
    name = path.rsplit("/", 1)[-1]
    try:
        cls = find_lexer_class_for_filename(name)
    except ClassNotFound:
        return None
    if cls is None:
        return None
    # No newline stripping or adding: line numbers must match the file's exactly.
    return cls(stripnl=False, stripall=False, ensurenl=False)


@lru_cache(maxsize=4096)
def css_class(ttype) -> str:
    """The short pygments class of a token type ("k", "s2"…), from its nearest known parent."""
    while ttype is not None:
        cls = STANDARD_TYPES.get(ttype)
        if cls is not None:
            return cls
        ttype = ttype.parent
    return ""


def highlight_file(text: str, path: str, *, budget: float = TIME_BUDGET_SECONDS) -> Highlighted:
    """Highlight `text` (the whole file at `path`) into one HTML string per line.

    Args:
        text: the file's content; lines split on "\\n" (a "\\r" stays with its line).
        path: the file's path, whose name picks the lexer.
        budget: seconds the lexer may take before the file falls back to plain text.

    Returns:
        Highlighted with as many lines as `text.split("\\n")`.
    """
    lexer = lexer_for(path)
    if lexer is None:
        return Highlighted(plain_lines(text), False, "no lexer")
    if len(text) > MAX_BYTES or text.count("\n") > MAX_LINES:
        return Highlighted(plain_lines(text), False, "too large to highlight")
    if _longest_line(text) > MAX_LINE_LENGTH:
        return Highlighted(plain_lines(text), False, "lines too long to highlight")
    lines = _lex(lexer, text, time.monotonic() + budget)
    if lines is None:
        return Highlighted(plain_lines(text), False, "highlighting took too long")
    if len(lines) != text.count("\n") + 1:  # a lexer that dropped or added text
        return Highlighted(plain_lines(text), False, "the lexer changed the text")
    return Highlighted(lines, True)


def _longest_line(text: str) -> int:
    if len(text) <= MAX_LINE_LENGTH:
        return len(text)
    longest, start = 0, 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            return max(longest, len(text) - start)
        longest = max(longest, end - start)
        start = end + 1


def _lex(lexer: Lexer, text: str, deadline: float) -> list[str] | None:
    lines: list[str] = []
    current: list[str] = []
    for count, (_, ttype, value) in enumerate(lexer.get_tokens_unprocessed(text)):
        if count % _CHECK_EVERY == 0 and time.monotonic() > deadline:
            return None
        cls = css_class(ttype)
        if "\n" not in value:
            current.append(_span(cls, value))
            continue
        parts = value.split("\n")
        current.append(_span(cls, parts[0]))
        for part in parts[1:]:
            lines.append("".join(current))
            current = [_span(cls, part)]
    lines.append("".join(current))
    return lines


def _span(cls: str, value: str) -> str:
    if not value:
        return ""
    value = escape(value, quote=False)
    return f'<span class="{cls}">{value}</span>' if cls else value
