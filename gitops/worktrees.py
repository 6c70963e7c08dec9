"""Worktrees: a private checkout per agent run, so runs never share a working directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitError
from gitops.locks import repository_lock
from gitops.repos import branch_exists, head_commit
from gitops.run import DEFAULT_TIMEOUT, run_git


@dataclass(frozen=True)
class Worktree:
    """One working tree registered with a repository (the main checkout included)."""

    path: Path
    head: str | None  # None while its branch has no commit yet, or for a bare repository
    branch: str | None  # the short branch name; None when detached
    is_main: bool
    is_bare: bool
    is_prunable: bool  # its directory is gone; `git worktree prune` will forget it


def worktree_list(repo: Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> list[Worktree]:
    """Return the repository's worktrees, the main one first."""
    with _worktrees_lock(repo, timeout):
        return _list(repo, timeout)


def _list(repo: Path | str, timeout: float) -> list[Worktree]:
    result = run_git(repo, "worktree", "list", "--porcelain", "-z", timeout=timeout)
    records: list[list[str]] = [[]]
    for field in result.fields():
        # An empty field ends a record.
        if field:
            records[-1].append(field)
        else:
            records.append([])
    return [_parse_worktree(record, index == 0) for index, record in enumerate(records) if record]


def worktree_for_branch(
    repo: Path | str, branch: str, *, timeout: float = DEFAULT_TIMEOUT
) -> Worktree | None:
    """Return the worktree that has `branch` checked out, if any."""
    for tree in worktree_list(repo, timeout=timeout):
        if tree.branch == branch:
            return tree
    return None


def worktree_add(
    repo: Path | str,
    branch: str,
    dest_root: Path | str,
    name: str,
    *,
    detached: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Check `branch` out in a new worktree at `dest_root/name` and return its path.

    Git allows a branch in one worktree only. With `detached=True`, `branch` may be any
    commit (a sha, a tag, a branch checked out elsewhere) and the worktree has a detached
    HEAD there: meant for read-only work such as a test run at a given commit.
    """
    dest = Path(dest_root).absolute() / _directory_name(name)
    if detached:
        commitish = head_commit(repo, branch, timeout=timeout)
        options: tuple[str, ...] = ("--detach",)
    elif branch_exists(repo, branch, timeout=timeout):
        commitish, options = branch, ()
    else:
        # Given something other than a local branch, git would silently make a detached
        # worktree (or a new branch tracking a remote one); callers asked for this branch.
        raise GitError(f"no branch {branch!r} in {repo}")
    with _worktrees_lock(repo, timeout):
        run_git(repo, "worktree", "add", "--quiet", *options, str(dest), commitish, timeout=timeout)
    return dest


def worktree_remove(
    repo: Path | str, path: Path | str, *, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Remove the worktree at `path`, even if dirty or already deleted from disk.

    Removing a worktree that is no longer registered is a no-op, so this is safe to repeat.
    """
    target = Path(path).absolute()
    with _worktrees_lock(repo, timeout):
        tree = _registered(repo, target, timeout)
        if tree is None and target.exists():
            # Never delete a directory git does not know as one of this repository's worktrees.
            raise GitError(f"{target} is not a worktree of {repo}")
        if tree is not None and tree.is_main:
            raise GitError(f"refusing to remove the main working tree of {repo}")
        if tree is not None and target.exists():
            # Twice --force: discard uncommitted changes, and remove it even if locked.
            run_git(repo, "worktree", "remove", "--force", "--force", str(target), timeout=timeout)
        # Forget worktrees deleted behind git's back (this one included), or git would go on
        # refusing to check their branches out anywhere else.
        run_git(repo, "worktree", "prune", timeout=timeout)


@contextmanager
def temporary_worktree(
    repo: Path | str,
    branch: str,
    dest_root: Path | str,
    name: str,
    *,
    detached: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Path]:
    """Add a worktree as `worktree_add` does, and remove it when the block ends."""
    path = worktree_add(repo, branch, dest_root, name, detached=detached, timeout=timeout)
    try:
        yield path
    finally:
        worktree_remove(repo, path, timeout=timeout)


def _parse_worktree(record: list[str], is_main: bool) -> Worktree:
    # Each field is "<label> <value>", or a bare label such as "detached".
    values = {label: value for label, _, value in (field.partition(" ") for field in record)}
    branch = values.get("branch")
    return Worktree(
        path=Path(values["worktree"]),
        head=values.get("HEAD"),
        branch=branch.removeprefix("refs/heads/") if branch else None,
        is_main=is_main,
        is_bare="bare" in values,
        is_prunable="prunable" in values,
    )


def _registered(repo: Path | str, target: Path, timeout: float) -> Worktree | None:
    # git records resolved paths; resolve ours too (symlinked temp dirs, e.g. on macOS).
    wanted = target.resolve()
    for tree in _list(repo, timeout):
        if tree.path.resolve() == wanted:
            return tree
    return None


def _directory_name(name: str) -> str:
    # The name often comes from a run id; it must stay one directory inside dest_root.
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise GitError(f"invalid worktree name: {name!r}")
    return name


def _worktrees_lock(repo: Path | str, timeout: float) -> AbstractContextManager[None]:
    return repository_lock(repo, "worktrees", timeout=timeout)
