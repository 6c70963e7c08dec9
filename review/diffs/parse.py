"""Stage 1 of the diff pipeline: git's output parsed into files, hunks and numbered lines.

The unified diff comes from `gitops.diff` (renames detected, full blob ids) and is parsed
with unidiff; the file list with stats comes from `git diff --raw` and `--numstat`, so a
change set's file tree never needs the diff text itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a hunk: '+' added, '-' deleted, ' ' context, numbered on each side."""

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
