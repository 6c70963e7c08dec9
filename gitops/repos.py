"""Repositories and branches: find or clone a repository, create branches, resolve commits."""

from __future__ import annotations

import shutil
from pathlib import Path

from gitops.errors import GitError
from gitops.run import CLONE_TIMEOUT, DEFAULT_TIMEOUT, refuse_option, run_git


def ensure_repository(
    path: Path | str, url: str | None = None, *, timeout: float = CLONE_TIMEOUT
) -> Path:
    """Return the repository at `path`, cloning `url` there first when `path` is missing.

    Args:
        path: where the repository lives (its top level, or a bare repository's directory).
        url: what to clone when `path` does not exist or is an empty directory.
        timeout: seconds the clone may take.

    Returns:
        The absolute path of the repository.
    """
    target = Path(path).expanduser().absolute()
    if _has_content(target):
        if not _is_repository_root(target):
            raise GitError(f"{target} exists but is not a git repository")
        return target
    if not url:
        raise GitError(f"no git repository at {target}, and no URL to clone it from")
    _clone(url, target, timeout)
    return target


def branch_exists(repo: Path | str, branch: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Tell whether the local branch `branch` exists."""
    result = run_git(
        repo,
        "show-ref",
        "--verify",
        "--quiet",
        f"refs/heads/{branch}",
        ok_codes=(0, 1),
        timeout=timeout,
    )
    return result.returncode == 0


def ensure_branch(
    repo: Path | str, branch: str, base: str, *, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    """Create `branch` at `base` unless it exists; return whether it was created."""
    _check_branch_name(repo, branch, timeout)
    start = head_commit(repo, base, timeout=timeout)
    try:
        # The empty old value makes the creation atomic: it fails if the branch appeared
        # since, instead of moving a branch someone else just created.
        run_git(
            repo,
            "update-ref",
            "-m",
            f"branch: created from {base}",
            f"refs/heads/{branch}",
            start,
            "",
            timeout=timeout,
        )
    except GitError:
        if branch_exists(repo, branch, timeout=timeout):
            return False
        raise
    return True


def head_commit(repo: Path | str, ref: str = "HEAD", *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Return the full sha of the commit `ref` points at."""
    refuse_option(ref, "revision")
    result = run_git(
        repo,
        "rev-parse",
        "--verify",
        "--quiet",
        f"{ref}^{{commit}}",
        ok_codes=(0, 1),
        timeout=timeout,
    )
    if result.returncode != 0:
        raise GitError(f"unknown revision {ref!r} in {repo}", command=result.command)
    return result.stdout.strip()


def _has_content(path: Path) -> bool:
    # An empty directory is a place to clone into (e.g. a freshly mounted volume).
    return path.exists() and not (path.is_dir() and not any(path.iterdir()))


def _is_repository_root(path: Path) -> bool:
    # rev-parse also succeeds in any subdirectory of a repository, so compare its top level:
    # a plain directory inside some other checkout is not the repository asked for.
    try:
        bare, git_dir = run_git(
            path, "rev-parse", "--is-bare-repository", "--absolute-git-dir"
        ).stdout.split()
        root = git_dir if bare == "true" else run_git(path, "rev-parse", "--show-toplevel").stdout
    except GitError:
        return False
    return Path(root.strip()).resolve() == path.resolve()


def _clone(url: str, target: Path, timeout: float) -> None:
    existed = target.exists()
    try:
        # `--` so that a URL starting with a dash is never read as an option.
        run_git(None, "clone", "--quiet", "--", url, str(target), timeout=timeout)
    except GitError:
        # A killed clone leaves a partial copy that would pass for a repository next time.
        _remove_partial_clone(target, keep_directory=existed)
        raise


def _remove_partial_clone(target: Path, *, keep_directory: bool) -> None:
    if not keep_directory:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _check_branch_name(repo: Path | str, branch: str, timeout: float) -> None:
    refuse_option(branch, "branch name")
    result = run_git(
        repo, "check-ref-format", f"refs/heads/{branch}", ok_codes=(0, 1), timeout=timeout
    )
    if result.returncode != 0:
        raise GitError(f"invalid branch name: {branch!r}", command=result.command)
