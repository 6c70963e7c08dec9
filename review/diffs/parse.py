"""Stage 1 of the diff pipeline: git's output parsed into files, hunks and numbered lines.

The unified diff comes from `gitops.diff` (renames detected, full blob ids). A whole
change set's diff (at push time: carrying comments forward) is parsed with unidiff; the
viewer parses one file's diff at a time with `parse_file`, a minimal parser of its own that
reads only what the viewer needs and is about ten times faster than unidiff on a 100,000-line
file. The file list with stats comes from `git diff --raw` and `--numstat`, so a change
set's file tree never needs the diff text itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from unidiff import PatchSet
from unidiff.constants import (
    LINE_TYPE_ADDED,
    LINE_TYPE_CONTEXT,
    LINE_TYPE_NO_NEWLINE,
    LINE_TYPE_REMOVED,
)

import gitops
from gitops.run import refuse_option

# git's --raw status letters, as words shown in the file tree.
STATUS_WORDS = {
    "A": "added",
    "D": "deleted",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "type changed",
}
SYMLINK_MODE = "120000"
SUBMODULE_MODE = "160000"


class DiffLine(NamedTuple):
    """One line of a hunk: '+' added, '-' deleted, ' ' context, numbered on each side.

    A named tuple rather than a dataclass: a 100,000-line file makes as many, and a tuple
    is several times cheaper to build.
    """

    kind: str
    old_no: int | None
    new_no: int | None
    text: str  # without its line ending
    no_newline: bool = False  # "\ No newline at end of file" follows this line


@dataclass(slots=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    section: str
    lines: list[DiffLine] = field(default_factory=list)

    @property
    def old_end(self) -> int:
        return self.old_start + self.old_count  # one past the last old line

    @property
    def new_end(self) -> int:
        return self.new_start + self.new_count


@dataclass(slots=True)
class FileDiff:
    """One file of a diff, as far as the text of the diff tells."""

    path: str
    old_path: str
    status: str  # added / deleted / modified / renamed / copied / mode
    old_mode: str | None
    new_mode: str | None
    old_blob: str | None
    new_blob: str | None
    binary: bool
    additions: int
    deletions: int
    hunks: list[Hunk]

    @property
    def line_count(self) -> int:
        return sum(len(hunk.lines) for hunk in self.hunks)


def diff_text(repo: Path | str, base: str, head: str, paths: tuple[str, ...] = ()) -> str:
    """The unified diff from `base` to `head` (two commits, compared directly)."""
    if not paths:
        return gitops.diff(repo, base, head, since_merge_base=False)
    # A pathspec limits the diff; both sides of a rename must be in it for git to pair them.
    result = gitops.run_git(
        repo,
        "diff",
        "--find-renames",
        "--full-index",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        refuse_option(base, "revision"),
        refuse_option(head, "revision"),
        "--",
        *(f":(literal){path}" for path in paths),
    )
    return result.stdout


def parse_diff(text: str) -> list[FileDiff]:
    """Parse unified diff text from git into FileDiffs, in the diff's order."""
    if not text.strip():
        return []
    return [_file(patched) for patched in PatchSet(text)]


def _strip_prefix(name: str | None) -> str:
    if not name or name == "/dev/null":
        return ""
    return name[2:] if name[:2] in ("a/", "b/") else name


def _file(patched) -> FileDiff:
    path = _strip_prefix(patched.target_file) or _strip_prefix(patched.source_file)
    old_path = _strip_prefix(patched.source_file) or path
    old_blob, new_blob = _blobs(patched.patch_info)
    hunks = [_hunk(hunk) for hunk in patched]
    return FileDiff(
        path=path,
        old_path=old_path,
        status=_status(patched),
        old_mode=patched.source_mode,
        new_mode=patched.target_mode,
        old_blob=old_blob,
        new_blob=new_blob,
        binary=bool(patched.is_binary_file),
        additions=sum(hunk.added for hunk in patched),
        deletions=sum(hunk.removed for hunk in patched),
        hunks=hunks,
    )


def _status(patched) -> str:
    # From git's extended header lines, not from the hunks: unidiff takes a first hunk at
    # "-0,0" for an added file, which a -U0 diff of an insertion at the top also has.
    header = {line.split(" ", 2)[0] + " " + line.split(" ", 2)[1] for line in _header(patched)}
    if "new file" in header:
        return "added"
    if "deleted file" in header:
        return "deleted"
    if "rename from" in header:
        return "renamed"
    if "copy from" in header:
        return "copied"
    modes = patched.source_mode, patched.target_mode
    if all(modes) and modes[0] != modes[1] and not len(patched):
        return "mode"
    return "modified"


def _header(patched) -> list[str]:
    return [line for line in (patched.patch_info or ()) if line.count(" ") >= 1]


def _blobs(info) -> tuple[str | None, str | None]:
    # "index <old>..<new>[ <mode>]" with --full-index: the ids key the highlighting cache.
    for line in info or ():
        if line.startswith("index "):
            ids = line.split()[1]
            old, _, new = ids.partition("..")
            zero = set("0")
            return (None if set(old) <= zero else old), (None if set(new) <= zero else new)
    return None, None


def _hunk(source) -> Hunk:
    hunk = Hunk(
        old_start=source.source_start,
        old_count=source.source_length,
        new_start=source.target_start,
        new_count=source.target_length,
        section=source.section_header,
    )
    lines = hunk.lines
    for line in source:
        kind = line.line_type
        if kind == LINE_TYPE_NO_NEWLINE:
            if lines:
                last = lines[-1]
                lines[-1] = DiffLine(last.kind, last.old_no, last.new_no, last.text, True)
            continue
        if kind not in (LINE_TYPE_ADDED, LINE_TYPE_REMOVED, LINE_TYPE_CONTEXT):
            continue
        text = line.value
        if text.endswith("\n"):
            text = text[:-1]
        lines.append(DiffLine(kind, line.source_line_no, line.target_line_no, text))
    return hunk


# --- the viewer's fast path: one file's diff ---------------------------------------------

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_HEADER_STATUS = (
    ("new file mode ", "added"),
    ("deleted file mode ", "deleted"),
    ("rename from ", "renamed"),
    ("copy from ", "copied"),
)


def parse_file(text: str, path: str, old_path: str | None = None) -> FileDiff | None:
    """Parse the diff of one file (`diff_text` limited to its paths) into a FileDiff.

    Args:
        text: git's unified diff; it may hold other files' sections (a copy's source also
            changed), of which the one that ends at `path` is taken.
        path: the file's path on the new side, as the change set's file list names it.
        old_path: its path on the old side when renamed or copied.

    Returns:
        The FileDiff, or None when the text has no section for the file.
    """
    section = _section_for(text.split("\n"), path)
    if section is None:
        return None
    header, body = section
    info = _header_info(header)
    binary = any(line.startswith(("Binary files ", "GIT binary patch")) for line in header)
    hunks, additions, deletions = _hunks(body)
    old_mode, new_mode = info.get("old mode"), info.get("new mode")
    status = info.get("status", "modified")
    if status == "modified" and old_mode and new_mode and old_mode != new_mode and not hunks:
        status = "mode"
    return FileDiff(
        path=path,
        old_path=old_path or path,
        status=status,
        old_mode=old_mode,
        new_mode=new_mode,
        old_blob=info.get("old blob"),
        new_blob=info.get("new blob"),
        binary=binary,
        additions=additions,
        deletions=deletions,
        hunks=hunks,
    )


def _section_for(lines: list[str], path: str) -> tuple[list[str], list[str]] | None:
    """The (header, hunk lines) of the section of `path` among the diff's sections."""
    starts = [n for n, line in enumerate(lines) if line.startswith("diff --git ")]
    if not starts:
        return None
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    if len(bounds) > 1:
        wanted = {f"+++ {_quoted('b/' + path)}", f"rename to {_quoted(path)}"}
        wanted |= {f"copy to {_quoted(path)}", f"diff --git {_quoted('a/' + path)} "}
        ends_with = f" {_quoted('b/' + path)}"
        for start, end in bounds:
            head = lines[start : _first_hunk(lines, start, end)]
            # A name with spaces or quotes gets a tab after it on the ---/+++ lines.
            if head[0].endswith(ends_with) or any(line.rstrip("\t") in wanted for line in head):
                bounds = [(start, end)]
                break
        else:
            return None
    start, end = bounds[0]
    split = _first_hunk(lines, start, end)
    return lines[start:split], lines[split:end]


def _first_hunk(lines: list[str], start: int, end: int) -> int:
    for n in range(start, end):
        if lines[n].startswith("@@ "):
            return n
    return end


def _quoted(name: str) -> str:
    """A path as git writes it in diff headers (core.quotepath off: only specials quoted)."""
    if not any(ch in name for ch in '"\\\t\n') and all(ord(ch) >= 32 for ch in name):
        return name
    escapes = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n"}
    body = "".join(escapes.get(ch) or (f"\\{ord(ch):03o}" if ord(ch) < 32 else ch) for ch in name)
    return f'"{body}"'


def _header_info(header: list[str]) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in header:
        for prefix, status in _HEADER_STATUS:
            if line.startswith(prefix):
                info.setdefault("status", status)
        if line.startswith("index "):
            old, _, new = line.split()[1].partition("..")
            if set(old) - {"0"}:
                info["old blob"] = old
            if set(new) - {"0"}:
                info["new blob"] = new
        elif line.startswith(("old mode ", "deleted file mode ")):
            info["old mode"] = line.rsplit(" ", 1)[1]
        elif line.startswith(("new mode ", "new file mode ")):
            info["new mode"] = line.rsplit(" ", 1)[1]
    for line in header:
        parts = line.split()
        if line.startswith("index ") and len(parts) == 3:
            # "index <old>..<new> <mode>": the mode of a side that did not change it.
            info.setdefault("old mode", parts[2])
            info.setdefault("new mode", parts[2])
    return info


def _hunks(body: list[str]) -> tuple[list[Hunk], int, int]:
    hunks: list[Hunk] = []
    additions = deletions = 0
    n, total = 0, len(body)
    while n < total:
        match = _HUNK_RE.match(body[n])
        n += 1
        if match is None:
            continue
        # A count left out means one line.
        old_count = int(match[2]) if match[2] is not None else 1
        new_count = int(match[4]) if match[4] is not None else 1
        hunk = Hunk(int(match[1]), old_count, int(match[3]), new_count, match[5])
        n, added, deleted = _hunk_lines(body, n, hunk)
        additions += added
        deletions += deleted
        hunks.append(hunk)
    return hunks, additions, deletions


def _hunk_lines(body: list[str], n: int, hunk: Hunk) -> tuple[int, int, int]:
    """Read the hunk's lines from body[n]; returns where it ends and its +/- counts."""
    lines = hunk.lines
    append = lines.append
    old_no, new_no = hunk.old_start, hunk.new_start
    old_left, new_left = hunk.old_count, hunk.new_count
    added = deleted = 0
    total = len(body)
    while n < total and (old_left > 0 or new_left > 0):
        line = body[n]
        kind = line[:1]
        if kind == "+":
            append(DiffLine("+", None, new_no, line[1:]))
            new_no += 1
            new_left -= 1
            added += 1
        elif kind == "-":
            append(DiffLine("-", old_no, None, line[1:]))
            old_no += 1
            old_left -= 1
            deleted += 1
        elif kind == " " or line == "":
            append(DiffLine(" ", old_no, new_no, line[1:]))
            old_no += 1
            new_no += 1
            old_left -= 1
            new_left -= 1
        elif kind == "\\":
            if lines:
                lines[-1] = lines[-1]._replace(no_newline=True)
        else:
            break  # not a hunk line: the counts were wrong, stop rather than misnumber
        n += 1
    if n < total and body[n].startswith("\\") and lines:
        lines[-1] = lines[-1]._replace(no_newline=True)
        n += 1
    return n, added, deleted


@dataclass(frozen=True)
class FileEntry:
    """A file of a change set as the file tree shows it (stored as JSON on a Revision)."""

    path: str
    old_path: str | None
    status: str
    additions: int
    deletions: int
    binary: bool
    old_mode: str | None
    new_mode: str | None

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "additions": self.additions,
            "deletions": self.deletions,
            "binary": self.binary,
            "old_mode": self.old_mode,
            "new_mode": self.new_mode,
        }


def file_entries(repo: Path | str, base: str, head: str) -> list[FileEntry]:
    """Every changed file from `base` to `head` with status, modes and line counts."""
    raw = gitops.run_git(
        repo,
        "diff",
        "--raw",
        "-z",
        "--find-renames",
        "--no-abbrev",
        refuse_option(base, "revision"),
        refuse_option(head, "revision"),
        "--",
    ).fields()
    counts = {
        stat.path: stat for stat in gitops.diff_stat(repo, base, head, since_merge_base=False)
    }
    entries = []
    position = 0
    while position < len(raw):
        # ":<old mode> <new mode> <old sha> <new sha> <status>", then one or two paths.
        old_mode, new_mode, _, _, letters = raw[position][1:].split(" ")
        letter = letters[0]
        if letter in "RC":
            old_path, path = raw[position + 1], raw[position + 2]
            position += 3
        else:
            old_path, path = None, raw[position + 1]
            position += 2
        stat = counts.get(path)
        status = STATUS_WORDS.get(letter, "modified")
        if letter == "M" and old_mode != new_mode and stat and not stat.additions + stat.deletions:
            status = "mode"
        entries.append(
            FileEntry(
                path=path,
                old_path=old_path,
                status=status,
                additions=stat.additions if stat else 0,
                deletions=stat.deletions if stat else 0,
                binary=bool(stat and stat.is_binary),
                old_mode=None if set(old_mode) <= {"0"} else old_mode,
                new_mode=None if set(new_mode) <= {"0"} else new_mode,
            )
        )
    return entries


def merge_base(repo: Path | str, base: str, head: str) -> str:
    result = gitops.run_git(
        repo,
        "merge-base",
        refuse_option(base, "revision"),
        refuse_option(head, "revision"),
    )
    return result.stdout.strip()


def blob_text(repo: Path | str, blob: str) -> str:
    """A file's content by blob id (decoded as git output is: invalid UTF-8 replaced)."""
    return gitops.run_git(repo, "cat-file", "blob", refuse_option(blob, "blob")).stdout
