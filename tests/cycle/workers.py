"""Real Celery worker processes (with embedded beat) on the test database, for the tests
that are about workers: the whole cycle, crashes, and broker or database restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

FAST_RECOVERY = {
    "CODEMAESTRO_WORKER_LEASE_SECONDS": "3",
    "CODEMAESTRO_REAPER_INTERVAL": "1",
    "CODEMAESTRO_DISPATCH_INTERVAL": "1",
    "CODEMAESTRO_REDISPATCH_SECONDS": "3",
    "CODEMAESTRO_RESEND_TESTRUN_SECONDS": "8",
    "CODEMAESTRO_REHANDLE_EVENT_SECONDS": "3",
}


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def private_queue() -> str:
    """A queue of this test's own: other test runs may share the Redis broker."""
    return f"cm-test-{uuid.uuid4().hex[:12]}"


class Worker:
    """One `celery worker -B` process group; `kill()` is kill -9 of the whole group.

    With `supervised=True` it is restarted whenever it exits on its own, as compose's
    `restart: unless-stopped` or systemd would do in production.
    """

    def __init__(
        self, name: str, data_dir: Path, log_path: Path, queue: str, supervised: bool = False
    ) -> None:
        self.name = name
        self.queue = queue
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        if supervised:
            threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            if self.process is not None and self.process.poll() is not None:
                self.restarts += 1
                self.start()

    def start(self, timeout: float = 30) -> Worker:
        env = {
            **os.environ,
            **FAST_RECOVERY,
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CODEMAESTRO_DATA_DIR": str(self.data_dir),
            "CELERY_QUEUE": self.queue,
            # As compose.yaml runs workers: one reused connection per process, no pool.
            "DB_POOL": "false",
            "DB_CONN_MAX_AGE": "300",
            "CELERY_DB_REUSE_MAX": "1000",
            "DJANGO_SETTINGS_MODULE": "codemaestro.settings",
        }
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "codemaestro", "worker", "-B",
                "-s", str(self.data_dir / "beat-schedule"),
                "-l", "info", "-n", self.name, "--concurrency", "2",
                "--without-gossip", "--without-mingle",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_for(lambda: b" ready." in self.log_path.read_bytes()[offset:], timeout, self.log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """kill -9 of the worker and its pool processes: nothing gets to clean up."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self._stopping.set()
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition: Callable[[], object], timeout: float, describe=lambda: "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {condition}\n{describe()}")


def fresh_connection() -> None:
    """After the database restarted under us, the next query needs a new connection — and,
    with a pool, a new pool: the old one would first wait to replace every dead one."""
    connection.close()
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()
