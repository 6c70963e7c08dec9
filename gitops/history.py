"""Commits: make them, read them back, and find the ones an agent run produced."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gitops.errors import GitError
from gitops.repos import head_commit
from gitops.run import DEFAULT_TIMEOUT, refuse_option, run_git

RUN_TRAILER_KEY = "CodeMaestro-Run"

# Fields of one commit in `git log` output, separated by the unit separator (0x1f); commits
# are separated by NUL (-z). Neither can appear in names, dates or a one-line subject.
_FIELDS = ("%H", "%an", "%ae", "%aI", "%s", "%(trailers:only,unfold)")
_LOG_FORMAT = "%x1f".join(_FIELDS)


@dataclass(frozen=True)
class Commit:
    """One commit as `log` reads it."""

    sha: str
    author_name: str
    author_email: str
    date: datetime  # the author date, timezone-aware
    subject: str
    trailers: tuple[tuple[str, str], ...]  # (key, value) in message order, keys as written

    def trailer(self, key: str) -> str | None:
        """Return the first value of trailer `key` (matched case-insensitively), if any."""
        for name, value in self.trailers:
            if name.lower() == key.lower():
                return value
        return None

    @property
    def run_code(self) -> str | None:
        """The agent run that made this commit, from its `CodeMaestro-Run` trailer."""
        return self.trailer(RUN_TRAILER_KEY)


def run_trailer(run_code: uuid.UUID | str) -> str:
    """Return the trailer line that ties a commit to an agent run; put it last in a message."""
    return f"{RUN_TRAILER_KEY}: {uuid.UUID(str(run_code))}"


def commit_all(
    worktree: Path | str,
    message: str,
    author_name: str,
    author_email: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> str | None:
    """Commit every change in `worktree` and return the new sha, or None if nothing changed.

    New, modified and deleted files are all staged; ignored files are not.
    """
    run_git(worktree, "add", "--all", timeout=timeout)
    staged = run_git(worktree, "diff", "--cached", "--quiet", ok_codes=(0, 1), timeout=timeout)
    if staged.returncode == 0:
        return None
    author = {"GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email}
    # The message goes through stdin so any text is safe; "whitespace" cleanup keeps lines
    # starting with '#' (Markdown headings), which the default cleanup would delete.
    run_git(
        worktree,
        "commit",
        "--quiet",
        "--cleanup=whitespace",
        "--file=-",
        stdin=message,
        env=author,
        timeout=timeout,
    )
    return head_commit(worktree, timeout=timeout)


def log(
    repo: Path | str, ref: str = "HEAD", limit: int = 50, *, timeout: float = DEFAULT_TIMEOUT
) -> list[Commit]:
    """Return up to `limit` commits reachable from `ref`, newest first."""
    return _log(repo, ref, limit, (), timeout)


def commits_for_run(
    repo: Path | str,
    branch: str,
    run_code: uuid.UUID | str,
    *,
    limit: int = 500,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Commit]:
    """Return the commits on `branch` whose trailer names agent run `run_code`, newest first."""
    trailer = run_trailer(run_code)
    wanted = trailer.partition(": ")[2]
    # --grep narrows the walk in git; the trailer check drops messages that merely quote it.
    commits = _log(repo, branch, limit, ("--fixed-strings", f"--grep={trailer}"), timeout)
    return [commit for commit in commits if commit.run_code == wanted]


def ahead_behind(
    repo: Path | str, branch: str, base: str, *, timeout: float = DEFAULT_TIMEOUT
) -> tuple[int, int]:
    """Return how many commits `branch` has that `base` lacks, and how many it lacks."""
    refuse_option(branch, "revision")
    refuse_option(base, "revision")
    result = run_git(
        repo, "rev-list", "--left-right", "--count", f"{base}...{branch}", "--", timeout=timeout
    )
    behind, ahead = result.stdout.split()
    return int(ahead), int(behind)


def _log(
    repo: Path | str, ref: str, limit: int, filters: tuple[str, ...], timeout: float
) -> list[Commit]:
    refuse_option(ref, "revision")
    if limit < 1:
        raise GitError(f"log limit must be at least 1, not {limit}")
    result = run_git(
        repo,
        "log",
        "-z",
        f"--format={_LOG_FORMAT}",
        f"--max-count={limit}",
        *filters,
        ref,
        "--",
        timeout=timeout,
    )
    return [_parse_commit(record) for record in result.stdout.split("\0") if record]


def _parse_commit(record: str) -> Commit:
    sha, name, email, date, subject, trailers = record.split("\x1f")
    return Commit(
        sha=sha,
        author_name=name,
        author_email=email,
        date=datetime.fromisoformat(date),
        subject=subject,
        trailers=tuple(_parse_trailer(line) for line in trailers.splitlines() if line),
    )


def _parse_trailer(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()
