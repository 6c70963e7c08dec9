"""The errors gitops raises: every git failure becomes a GitError that says what git said."""

from __future__ import annotations

from collections.abc import Sequence


class GitError(Exception):
    """A git command failed, timed out, or could not start; or its inputs were refused."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        # The full argv, so a log line shows exactly what ran.
        self.command = tuple(command)
        # None when git never finished (timeout, missing binary) or never ran (bad input).
        self.returncode = returncode
        self.stderr = stderr.strip()

    def __str__(self) -> str:
        if not self.stderr:
            return self.message
        return f"{self.message}; git said: {self.stderr}"


class MergeConflict(GitError):
    """A merge stopped on conflicts; it was aborted and `files` lists the conflicting paths."""

    def __init__(
        self,
        message: str,
        *,
        files: Sequence[str],
        command: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message, command=command, returncode=returncode, stderr=stderr)
        self.files = tuple(files)
