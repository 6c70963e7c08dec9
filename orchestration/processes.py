"""Run an untrusted command line with a deadline, an output cap and a minimal environment.

Used for agent commands and for project test commands. The command runs in its own
session, so on timeout the whole process group (children and grandchildren) is killed,
and whatever it leaves behind after a normal exit is killed too. Output is read as it
comes and only a bounded head and tail are kept, so a command that prints gigabytes
cannot exhaust the worker's memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Fixed system directories: the worker's own PATH may point into places that should not
# leak into agent commands (home directories, credential helpers).
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

_READ_CHUNK = 64 * 1024
_POLL_SECONDS = 0.1
# After the command itself exits, output still buffered in the pipe (or written by
# leftover background processes) is read for at most this long.
_DRAIN_SECONDS = 1.0


class ProcessError(Exception):
    """The command could not be started at all (missing binary, missing directory)."""


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when killed by a signal or stopped at the timeout
    timed_out: bool
    duration_seconds: float
    output: str  # stdout and stderr interleaved, capped (see `truncated`)
    truncated: bool
    output_bytes_total: int
    killed_by: str | None = None  # signal name, e.g. "SIGTERM", when exit_code is None
    cwd_removed: bool = False  # the working directory no longer existed afterwards


def clean_environment(extra: dict[str, str], *, home: Path | None = None) -> dict[str, str]:
    """Return a minimal environment carrying nothing from os.environ except `extra`.

    Secrets in the worker's own environment (DATABASE_URL, SECRET_KEY, API keys) must
    never reach an agent command; the caller passes only the secrets granted to the
    agent profile in `extra`, which also overrides the defaults (e.g. PATH).
    """
    tmpdir = tempfile.gettempdir()
    # The current interpreter's directory comes first so `python` is the venv's python.
    path = os.pathsep.join([os.path.dirname(sys.executable), *SYSTEM_PATH])
    env = {
        "PATH": path,
        "HOME": str(home) if home is not None else tmpdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": tmpdir,
    }
    env.update(extra)
    return env


def run_process(
    argv: list[str] | str,
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    output_cap: int = 1_000_000,
    stdin: str | None = None,
    kill_grace: float = 2.0,
    on_output: Callable[[bytes], None] | None = None,
) -> ProcessResult:
    """Run `argv` in `cwd` with exactly `env`, killing its process group after `timeout`.

    A string is split with shlex (no shell). Raises ProcessError when the command cannot
    start; everything that happens after it started is reported in the result.
    `on_output` receives each chunk of output as it is read (a live log), uncapped.
    """
    args = _split(argv)
    if not args:
        raise ProcessError("empty command")
    if output_cap < 0:
        raise ValueError("output_cap must not be negative")
    collector = _OutputCollector(output_cap, on_output)
    started = time.monotonic()
    process = _start(args, cwd=cwd, env=env, with_stdin=stdin is not None)
    try:
        if stdin is not None:
            _feed_stdin(process, stdin)
        timed_out = _pump(process, collector, deadline=started + timeout)
    except BaseException:
        # An interrupted worker (e.g. Celery's soft time limit) must not leave it running.
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        raise
    _stop_group(process, collector, timed_out=timed_out, kill_grace=kill_grace)
    returncode = process.wait()
    duration = time.monotonic() - started
    output, truncated = collector.text()
    return ProcessResult(
        # A command stopped by our timeout did not finish, whatever status it exited with.
        exit_code=returncode if returncode >= 0 and not timed_out else None,
        timed_out=timed_out,
        duration_seconds=duration,
        output=output,
        truncated=truncated,
        output_bytes_total=collector.total,
        killed_by=signal.Signals(-returncode).name if returncode < 0 else None,
        cwd_removed=not cwd.is_dir(),
    )


def _split(argv: list[str] | str) -> list[str]:
    if not isinstance(argv, str):
        return list(argv)
    try:
        return shlex.split(argv)
    except ValueError as exc:  # unbalanced quotes
        raise ProcessError(f"command cannot be parsed: {exc}") from exc


def _start(
    args: list[str], *, cwd: Path, env: dict[str, str], with_stdin: bool
) -> subprocess.Popen[bytes]:
    if not cwd.is_dir():
        raise ProcessError(f"working directory does not exist: {cwd}")
    try:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError as exc:
        # The same error covers a cwd removed between the check above and the exec.
        if exc.filename is not None and Path(exc.filename) == cwd:
            raise ProcessError(f"working directory does not exist: {cwd}") from exc
        raise ProcessError(f"command not found: {args[0]}") from exc
    except PermissionError as exc:
        raise ProcessError(f"command is not executable: {args[0]}") from exc
    except OSError as exc:
        raise ProcessError(f"command could not start: {args[0]}: {exc.strerror}") from exc


def _feed_stdin(process: subprocess.Popen[bytes], text: str) -> None:
    # A thread, because a child that never reads would otherwise block us on a full pipe.
    pipe = process.stdin
    assert pipe is not None

    def feed() -> None:
        try:
            pipe.write(text.encode())
            pipe.close()
        except OSError:  # the child exited or closed its stdin early
            pass

    threading.Thread(target=feed, name=f"stdin-{process.pid}", daemon=True).start()


def _pump(
    process: subprocess.Popen[bytes], collector: _OutputCollector, *, deadline: float
) -> bool:
    """Read output until the command is done; return True if the deadline passed first."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exited_at is None and _has_exited(process.pid):
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN_SECONDS:
                return False  # leftover background processes still hold the pipe open
            if exited_at is None and now >= deadline:
                return True
            wait = _POLL_SECONDS if exited_at is not None else min(_POLL_SECONDS, deadline - now)
            if selector.select(timeout=wait) and not _read_chunk(fd, collector):
                break
    if exited_at is not None:
        return False
    # End of output first: the command closed its output but may still be running.
    return not _wait_exited(process.pid, deadline - time.monotonic())


def _read_chunk(fd: int, collector: _OutputCollector) -> bool:
    """Read one chunk into `collector`; return False at end of output."""
    chunk = os.read(fd, _READ_CHUNK)
    collector.add(chunk)
    return bool(chunk)


def _stop_group(
    process: subprocess.Popen[bytes],
    collector: _OutputCollector,
    *,
    timed_out: bool,
    kill_grace: float,
) -> None:
    """Terminate the command's process group and read what is left of its output.

    The group leader is not reaped yet at this point (see `_has_exited`), so its pid
    cannot have been reused and signalling the group is safe.
    """
    if timed_out:
        _signal_group(process.pid, signal.SIGTERM)
        _wait_exited(process.pid, kill_grace)
    # Grandchildren that ignored SIGTERM, and background processes left after a normal
    # exit, must not outlive the run.
    _signal_group(process.pid, signal.SIGKILL)
    assert process.stdout is not None
    with process.stdout, selectors.DefaultSelector() as selector:
        fd = process.stdout.fileno()
        selector.register(fd, selectors.EVENT_READ)
        drain_until = time.monotonic() + _DRAIN_SECONDS
        while (remaining := drain_until - time.monotonic()) > 0:
            if selector.select(timeout=remaining) and not _read_chunk(fd, collector):
                break


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, signum)


def _has_exited(pid: int) -> bool:
    # WNOWAIT leaves the process a zombie, so its pid (and the group id) stays reserved
    # until Popen.wait() reaps it after the whole group has been killed.
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # already reaped elsewhere (SIGCHLD ignored)
        return True
    return info is not None


def _wait_exited(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + max(seconds, 0.0)
    while not _has_exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


class _OutputCollector:
    """Keeps the first and the last bytes of a stream within a cap, counting the rest."""

    def __init__(self, cap: int, on_output: Callable[[bytes], None] | None = None) -> None:
        self.on_output = on_output
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        if self.on_output is not None and chunk:
            try:
                self.on_output(chunk)
            except Exception:  # a live log that fails must not stop the command's run
                log.exception("the output hook failed")
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            # Trim only when twice the cap, so trimming costs O(1) per byte on average.
            if len(self.tail) > 2 * self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    def text(self) -> tuple[str, bool]:
        """Return the decoded output and whether bytes were left out."""
        tail = bytes(self.tail[len(self.tail) - self.tail_cap :]) if self.tail_cap else b""
        omitted = self.total - len(self.head) - len(tail)
        if omitted == 0:
            return (bytes(self.head) + tail).decode(errors="replace"), False
        head = _cut_incomplete_utf8_end(bytes(self.head))
        tail = _cut_incomplete_utf8_start(tail)
        omitted = self.total - len(head) - len(tail)
        marker = f"\n… [{omitted} bytes omitted] …\n"
        return head.decode(errors="replace") + marker + tail.decode(errors="replace"), True


def _cut_incomplete_utf8_start(data: bytes) -> bytes:
    # Continuation bytes (0b10xxxxxx) at the start belong to a character cut in half.
    start = 0
    while start < min(len(data), 3) and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:]


def _cut_incomplete_utf8_end(data: bytes) -> bytes:
    for back in range(1, min(len(data), 4) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: keep looking for the lead byte
        if byte < 0x80:
            return data
        needed = 2 if byte >= 0xC0 and byte < 0xE0 else 3 if byte < 0xF0 else 4
        return data if back >= needed else data[:-back]
    return data
