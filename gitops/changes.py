"""Changes: what is uncommitted in a worktree, diffs between commits, and applying patches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitError
from gitops.run import DEFAULT_TIMEOUT, refuse_option, run_git


@dataclass(frozen=True)
class FileStat:
    """Lines added and deleted in one file of a diff."""

    path: str
    old_path: str | None  # the path before a rename; None when not renamed
    additions: int
    deletions: int
    is_binary: bool  # git counts no lines for binary files: additions and deletions are 0


def changed_files(worktree: Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Return the sorted paths that differ from HEAD: modified, staged, deleted or untracked.

    A rename shows as its two paths. Ignored files are not changes.
    """
    result = run_git(
        worktree,
        "status",
        "--porcelain=v1",
        "-z",
        "--no-renames",
        "--untracked-files=all",
        timeout=timeout,
    )
    # Each entry is "XY <path>": two status letters and a space before the path.
    return sorted({entry[3:] for entry in result.fields()})


def is_clean(worktree: Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Tell whether `worktree` has nothing to commit (ignored files aside)."""
    return not changed_files(worktree, timeout=timeout)


def diff(
    repo: Path | str,
    base: str,
    head: str,
    *,
    since_merge_base: bool = True,
    context: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Return the unified diff from `base` to `head`, renames detected, blob ids in full.

    By default the diff starts from where `head` forked off `base` (`base...head`), so it
    shows what the branch changed even after `base` moved on: what a reviewer must see.
    With `since_merge_base=False` it compares the two commits directly. Binary files show
    as "Binary files ... differ".
    """
    result = run_git(
        repo,
        "diff",
        "--find-renames",
        "--full-index",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        f"--unified={context}",
        *_range(base, head, since_merge_base),
        "--",
        timeout=timeout,
    )
    return result.stdout


def diff_stat(
    repo: Path | str,
    base: str,
    head: str,
    *,
    since_merge_base: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[FileStat]:
    """Return per-file line counts of the same diff as `diff`, in git's order."""
    result = run_git(
        repo,
        "diff",
        "--numstat",
        "-z",
        "--find-renames",
        *_range(base, head, since_merge_base),
        "--",
        timeout=timeout,
    )
    return _parse_numstat(result.fields())


def apply_patch(worktree: Path | str, patch_text: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Apply a unified diff to `worktree` and its index, or change nothing and raise.

    A patch touching paths outside the worktree is refused by git.
    """
    # Patches pasted by agents often lose the final newline, which git calls corrupt.
    patch = patch_text if patch_text.endswith("\n") else patch_text + "\n"
    command = ("apply", "--index", "--whitespace=nowarn")
    try:
        # The check first: git's reason for a refusal, and a guarantee nothing was touched.
        run_git(worktree, *command, "--check", "-", stdin=patch, timeout=timeout)
    except GitError as error:
        raise GitError(
            "the patch does not apply",
            command=error.command,
            returncode=error.returncode,
            stderr=error.stderr,
        ) from error
    run_git(worktree, *command, "-", stdin=patch, timeout=timeout)


def _range(base: str, head: str, since_merge_base: bool) -> tuple[str, ...]:
    refuse_option(base, "revision")
    refuse_option(head, "revision")
    return (f"{base}...{head}",) if since_merge_base else (base, head)


def _parse_numstat(fields: list[str]) -> list[FileStat]:
    # Each entry is "added<TAB>deleted<TAB>path"; for a rename the path is empty and the old
    # and new paths follow as two more fields. Binary files count "-" lines.
    stats: list[FileStat] = []
    position = 0
    while position < len(fields):
        added, deleted, path = fields[position].split("\t", 2)
        old_path = None
        if not path:
            old_path, path = fields[position + 1], fields[position + 2]
            position += 2
        position += 1
        is_binary = added == "-"
        stats.append(
            FileStat(
                path=path,
                old_path=old_path,
                additions=0 if is_binary else int(added),
                deletions=0 if is_binary else int(deleted),
                is_binary=is_binary,
            )
        )
    return stats
