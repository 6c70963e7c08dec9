"""`manage.py up`: the embedded default in one command.

Migrates, collects static files, seeds the demo, then runs daphne, a Celery worker and
Celery beat under honcho, which prefixes their output and stops all of them on Ctrl-C,
SIGTERM or a closed terminal. Every production code path runs unchanged; only the
backends are embedded.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from honcho.manager import Manager
from honcho.printer import Printer

from orchestration.demo.seed import DemoInfo, DemoSeedError, demo_seed

READY_TIMEOUT_SECONDS = 90.0
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL")
ASGI_APPLICATION = "codemaestro.asgi:application"


class Command(BaseCommand):
    help = (
        "Run CodeMaestro on its embedded default (SQLite, Celery's filesystem broker, the "
        "SQLite channel layer): migrate, seed the demo, then start the web server, a Celery "
        "worker and Celery beat together. Ctrl-C stops all of them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="interface to listen on (for a name other than localhost, set ALLOWED_HOSTS)",
        )
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")
        parser.add_argument("--no-seed", action="store_true", help="do not seed the demo")
        parser.add_argument(
            "--allow-services",
            action="store_true",
            help="run even though DATABASE_URL or REDIS_URL is set (uses those services)",
        )

    def handle(self, *args, host: str, port: int, no_seed: bool, allow_services: bool, **options):
        _refuse_services(allowed=allow_services)
        _refuse_taken_port(host, port)
        data_dir = Path(settings.DATA_DIR)
        try:
            demo = self._prepare(data_dir, seed=not no_seed)
        except KeyboardInterrupt:
            raise CommandError("Interrupted before anything was started.") from None
        self.stdout.write(
            "Starting the web server, a Celery worker and Celery beat; "
            "the URL follows as soon as the web server answers."
        )
        sys.exit(_run_processes(host=host, port=port, data_dir=data_dir, demo=demo))

    def _prepare(self, data_dir: Path, *, seed: bool) -> DemoInfo | None:
        self.stdout.write(f"Preparing the database and files in {data_dir} …")
        _prepare_data_dir(data_dir)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        demo = _seed(data_dir) if seed else None
        # The children open their own connections; a forked copy of ours would be shared.
        connections.close_all()
        return demo


def _refuse_services(*, allowed: bool) -> None:
    present = [name for name in SERVICE_VARIABLES if os.environ.get(name)]
    if present and not allowed:
        raise CommandError(
            f"{' and '.join(present)} {'is' if len(present) == 1 else 'are'} set, but "
            "`manage.py up` exists to run the embedded default (SQLite, filesystem broker, "
            "SQLite channel layer) with no services. Unset "
            f"{' and '.join(present)} to use it, or pass --allow-services to run these "
            "processes against the configured services."
        )


def _refuse_taken_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # SO_REUSEADDR as the server itself sets it: only a live listener makes the bind fail,
    # not connections of a server that just stopped.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"Port {port} on {host} is already in use (another CodeMaestro or another "
                    f"server?). Stop it, or pick another port: bin/start --port {port + 1}"
                ) from None
            raise CommandError(f"Cannot listen on {host}:{port}: {error.strerror}") from None


def _prepare_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        # kombu's filesystem transport expects its folders to exist.
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def _seed(data_dir: Path) -> DemoInfo:
    try:
        return demo_seed(data_dir=data_dir)
    except DemoSeedError as error:
        raise CommandError(f"Could not seed the demo: {error}") from error


def _run_processes(*, host: str, port: int, data_dir: Path, demo: DemoInfo | None) -> int:
    url = f"http://{_browsable_host(host)}:{port}/"
    stopped = threading.Event()

    def stop_on_hangup(signum: int, frame: object) -> None:
        output.say("SIGHUP received (terminal closed): stopping")
        manager.returncode = 128 + signum
        manager.terminate()

    def on_started() -> None:
        # Only this process turns a closed terminal into a clean stop; honcho's forked
        # helpers keep ignoring SIGHUP, or they would die and leave their children running.
        signal.signal(signal.SIGHUP, stop_on_hangup)
        _announce_when_ready(url, demo, output, stopped)

    output = _Output(on_first_line=on_started)
    manager = Manager(printer=output)
    environment, cwd = _child_environment(data_dir), str(settings.BASE_DIR)
    for name, command in _commands(host, port).items():
        # honcho runs each line through a shell; `exec` leaves only the real process, so its
        # exit code and signals are the program's own.
        manager.add_process(name, "exec " + shlex.join(command), env=environment, cwd=cwd)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        manager.loop()  # handles SIGINT and SIGTERM itself
    finally:
        stopped.set()
    return manager.returncode or 0


def _commands(host: str, port: int) -> dict[str, list[str]]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "codemaestro"]
    return {
        "web": [python, "-m", "daphne", "-b", host, "-p", str(port), ASGI_APPLICATION],
        # One worker, no peers to find: mingle and gossip would only slow the start.
        "worker": [
            *celery,
            # Warnings only: the agents' work is shown in the control room, and routine sweeps
            # every few seconds would scroll the URL banner away.
            *("worker", "--pool=threads", "--concurrency=2", "-l", "warning"),
            *("--without-mingle", "--without-gossip"),
        ],
        # WARNING: at INFO beat logs every due task, and the reaper is due every few seconds.
        "beat": [*celery, "beat", "-l", "warning", "-s", settings.CELERY_BEAT_SCHEDULE_FILENAME],
    }


def _browsable_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _child_environment(data_dir: Path) -> dict[str, str]:
    environment = dict(os.environ)
    # The children and the commands they run (a project's `python -m pytest`) must use this
    # interpreter's environment even when it was never activated.
    venv_bin = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([venv_bin, environment.get("PATH", "")])
    environment["CODEMAESTRO_DATA_DIR"] = str(data_dir)
    environment.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


class _Output(Printer):
    """honcho's printer, serialised with our own lines, and the moment to start watching.

    honcho forks its helpers before it prints the first line, so a thread started from
    here never runs across a fork.
    """

    def __init__(self, *, on_first_line: Callable[[], None]) -> None:
        super().__init__(sys.stdout)
        self._lock = threading.Lock()
        self._on_first_line: Callable[[], None] | None = on_first_line

    def write(self, message) -> None:
        if self._on_first_line is not None:
            start, self._on_first_line = self._on_first_line, None
            start()
        with self._lock, contextlib.suppress(OSError):
            super().write(message)

    def say(self, text: str) -> None:
        # A closed terminal or pipe must not crash the supervisor before it stops its children.
        with self._lock, contextlib.suppress(OSError):
            print(text, file=self.output, flush=True)


def _announce_when_ready(
    url: str, demo: DemoInfo | None, output: _Output, stopped: threading.Event
) -> None:
    def watch() -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not stopped.is_set():
            if _answers(url + "login/"):
                output.say(_banner(url, demo))
                return
            if time.monotonic() > deadline:
                output.say(f"The web server has not answered at {url} yet; see its output above.")
                return
            stopped.wait(0.2)

    threading.Thread(target=watch, name="announce-url", daemon=True).start()


# No proxies: an http_proxy in the environment must not stand between us and our own server.
_LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        with _LOCAL_OPENER.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def _banner(url: str, demo: DemoInfo | None) -> str:
    rule = "=" * 72
    lines = [rule, f"  CodeMaestro is running at {url}"]
    if demo is not None:
        lines += [
            f"  Log in as: {demo.username}   password: {demo.password}",
            f"  (the login is saved in {demo.credentials_path})",
        ]
    lines += ["  Press Ctrl-C to stop the web server, the worker and beat.", rule]
    return "\n".join(lines)
