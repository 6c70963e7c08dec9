"""A per-repository lock for the operations git itself does not make safe to run concurrently."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops.errors import GitError
from gitops.run import run_git

# How often a waiting caller retries; worktree administration holds the lock for milliseconds.
_POLL_SECONDS = 0.02


@contextmanager
def repository_lock(repo: Path | str, purpose: str, *, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on `repo` for `purpose` (across threads and processes).

    `git worktree add` writes a new entry under .git/worktrees in several steps, while every
    other worktree command reads all the entries: run side by side they fail on each other's
    half-written entries ("failed to read .git/worktrees/<name>/commondir"). The lock file sits
    in the common git directory, which all worktrees of the repository share.
    """
    common = run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout
    lock_path = Path(common.strip()) / f"codemaestro-{purpose}.lock"
    with lock_path.open("a") as handle:
        _acquire(handle.fileno(), lock_path, timeout)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _acquire(descriptor: int, lock_path: Path, timeout: float) -> None:
    # Polling rather than a blocking flock, so the caller's timeout holds here too.
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise GitError(f"timed out after {timeout:g}s waiting for {lock_path}") from None
            time.sleep(_POLL_SECONDS)
