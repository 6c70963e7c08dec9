"""The one place that starts git: fixed environment, explicit timeout, failures as GitError."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitError

# Local commands finish in well under a second on a normal repository; a minute means stuck.
DEFAULT_TIMEOUT = 60.0
# A clone may cross a network and fetch a large history.
CLONE_TIMEOUT = 600.0

# Who commits when the caller does not say otherwise; set through the environment so git
# works on a machine with no global config at all.
IDENTITY_NAME = "CodeMaestro"
IDENTITY_EMAIL = "codemaestro@localhost"

# Variables that point git at another repository, index or config (`git rev-parse
# --local-env-vars`). They are set, for instance, when CodeMaestro itself runs under a git hook;
# inherited, they would make every command below act on the wrong repository.
_REPOSITORY_VARIABLES = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
    }
)

# Settings forced on every command whatever the host's or the repository's config says, so
# behaviour and output formats are the same on every machine.
_FORCED_CONFIG = (
    # Paths in output as UTF-8 text rather than octal escapes, so they can be shown as is.
    "core.quotepath=false",
    # Signing needs a key and may prompt; CodeMaestro's commits are identified by trailers.
    "commit.gpgsign=false",
    "tag.gpgsign=false",
    # Hooks are programs anyone with write access to .git (an agent in a worktree, say) can
    # plant; CodeMaestro must not run them with its own rights, and they may be interactive.
    "core.hooksPath=/dev/null",
    # Same reason: an fsmonitor command would run on every status.
    "core.fsmonitor=false",
    # `ext::` URLs run arbitrary commands, and clone URLs are user input.
    "protocol.ext.allow=never",
    "color.ui=false",
    "log.showSignature=false",
)


@dataclass(frozen=True)
class GitResult:
    """What a finished git command returned."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def fields(self) -> list[str]:
        """Split NUL-terminated (`-z`) output into its fields."""
        return self.stdout.split("\0")[:-1] if self.stdout else []


def run_git(
    cwd: Path | str | None,
    *args: str,
    timeout: float = DEFAULT_TIMEOUT,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: Collection[int] = (0,),
) -> GitResult:
    """Run `git -C cwd <args>` and return its output; raise GitError on any failure.

    Args:
        cwd: the repository or worktree to run in; None for commands that need none.
        args: git's arguments, one list item per argument (never a shell string).
        timeout: seconds before git and everything it started are killed.
        stdin: text fed to git's standard input; git reads nothing when None.
        env: variables added to the fixed environment (e.g. the author of a commit).
        ok_codes: exit codes that mean success for this command (e.g. 1 for "differs").
    """
    location = () if cwd is None else ("-C", str(cwd))
    forced = tuple(part for setting in _FORCED_CONFIG for part in ("-c", setting))
    argv = ("git", *location, *forced, *args)
    shown = shlex.join(("git", *args))
    try:
        # A new session makes git the leader of its own process group, so a timeout can kill
        # the helpers it spawns too; otherwise they keep our pipes open and we wait on them.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(env),
            start_new_session=True,
        )
    except OSError as error:  # git is not installed, or not executable
        raise GitError(f"could not start git: {error.strerror}", command=argv) from error
    try:
        out, err = process.communicate(None if stdin is None else stdin.encode(), timeout=timeout)
    except subprocess.TimeoutExpired as error:
        _kill_group(process)
        raise GitError(f"{shown} timed out after {timeout:g}s", command=argv) from error
    result = GitResult(argv, process.returncode, _text(out), _text(err))
    if result.returncode not in ok_codes:
        raise GitError(
            f"{shown} failed with exit code {result.returncode}",
            command=argv,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return result


def refuse_option(value: str, what: str) -> str:
    """Return `value`, refusing one git would read as an option (e.g. a branch named `-f`)."""
    if not value or value.startswith("-"):
        raise GitError(f"invalid {what}: {value!r}")
    return value


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _REPOSITORY_VARIABLES}
    env.update(
        {
            # Messages in English, so callers (and tests) can rely on git's wording.
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": IDENTITY_NAME,
            "GIT_AUTHOR_EMAIL": IDENTITY_EMAIL,
            "GIT_COMMITTER_NAME": IDENTITY_NAME,
            "GIT_COMMITTER_EMAIL": IDENTITY_EMAIL,
            # Nobody is there to answer a credentials prompt or close an editor: fail instead.
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_EDITOR": "true",
        }
    )
    env.update(extra or {})
    return env


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # ProcessLookupError: everything finished between the timeout and the kill.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    # Reap it (and drain the pipes) so no zombie is left behind.
    process.communicate()


def _text(output: bytes) -> str:
    # Content in diffs may be in any encoding; show it rather than fail on it.
    return output.decode("utf-8", errors="replace")
