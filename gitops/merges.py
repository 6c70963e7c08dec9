"""Merging a branch into another without disturbing anyone's working tree."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from gitops.changes import is_clean
from gitops.errors import GitError, MergeConflict
from gitops.repos import branch_exists, head_commit
from gitops.run import DEFAULT_TIMEOUT, GitResult, run_git
from gitops.worktrees import temporary_worktree, worktree_for_branch

MergeMode = Literal["merge_commit", "fast_forward"]
MERGE_MODES: tuple[MergeMode, ...] = ("merge_commit", "fast_forward")


def merge(
    repo: Path | str,
    branch: str,
    into: str,
    mode: MergeMode = "merge_commit",
    *,
    message: str | None = None,
    author_name: str | None = None,
    author_email: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Merge `branch` into the local branch `into` and return the new head of `into`.

    "merge_commit" always records a merge commit (--no-ff); "fast_forward" only moves `into`
    forward and refuses when the branches have diverged. On conflicts the merge is aborted,
    nothing changes, and MergeConflict names the files.

    Where the merge happens: if `into` is checked out in some worktree (usually the main
    checkout), git requires that checkout to follow its branch, so the merge runs there and
    that checkout must be clean; otherwise it runs in a temporary worktree of `into`, and no
    existing working tree is touched. `timeout` applies to each git command.
    """
    if mode not in MERGE_MODES:
        raise GitError(f"unknown merge mode {mode!r}; expected one of {', '.join(MERGE_MODES)}")
    head_commit(repo, branch, timeout=timeout)  # a clear error for an unknown branch
    if not branch_exists(repo, into, timeout=timeout):
        raise GitError(f"no branch {into!r} to merge into in {repo}")
    checkout = worktree_for_branch(repo, into, timeout=timeout)
    author = _author(author_name, author_email)
    if checkout is not None:
        if not is_clean(checkout.path, timeout=timeout):
            raise GitError(
                f"{into!r} is checked out at {checkout.path} with uncommitted changes; "
                "commit or discard them before merging"
            )
        return _merge_here(checkout.path, branch, into, mode, message, author, timeout)
    with (
        tempfile.TemporaryDirectory(prefix="codemaestro-merge-") as scratch,
        temporary_worktree(repo, into, scratch, "merge", timeout=timeout) as path,
    ):
        return _merge_here(path, branch, into, mode, message, author, timeout)


def _merge_here(
    worktree: Path,
    branch: str,
    into: str,
    mode: MergeMode,
    message: str | None,
    author: dict[str, str],
    timeout: float,
) -> str:
    if mode == "fast_forward":
        run_git(worktree, "merge", "--ff-only", "--quiet", branch, timeout=timeout)
        return head_commit(worktree, timeout=timeout)
    options = ("--no-ff", "--no-edit", "--quiet", *(("-m", message) if message else ()))
    # Exit code 1 is how git reports conflicts; anything else is an ordinary failure.
    result = run_git(
        worktree, "merge", *options, branch, env=author, ok_codes=(0, 1), timeout=timeout
    )
    if result.returncode == 1:
        _abort(worktree, branch, into, result, timeout)
    return head_commit(worktree, timeout=timeout)


def _abort(worktree: Path, branch: str, into: str, failed: GitResult, timeout: float) -> None:
    conflicted = run_git(
        worktree, "diff", "--name-only", "-z", "--diff-filter=U", timeout=timeout
    ).fields()
    merging = run_git(
        worktree,
        "rev-parse",
        "--quiet",
        "--verify",
        "MERGE_HEAD",
        ok_codes=(0, 1),
        timeout=timeout,
    )
    if merging.returncode == 0:
        # Put the checkout back as it was, so the next merge or run starts clean.
        run_git(worktree, "merge", "--abort", timeout=timeout)
    # With --quiet git still reports on stdout why a merge stopped; keep whichever it used.
    said = failed.stderr or failed.stdout
    if conflicted:
        raise MergeConflict(
            f"merging {branch!r} into {into!r} conflicts in: {', '.join(conflicted)}",
            files=conflicted,
            command=failed.command,
            returncode=failed.returncode,
            stderr=said,
        )
    raise GitError(
        f"merging {branch!r} into {into!r} failed",
        command=failed.command,
        returncode=failed.returncode,
        stderr=said,
    )


def _author(name: str | None, email: str | None) -> dict[str, str]:
    author: dict[str, str] = {}
    if name:
        author["GIT_AUTHOR_NAME"] = name
    if email:
        author["GIT_AUTHOR_EMAIL"] = email
    return author
