"""The product as a person sees it: daphne and a real Celery worker on the test database,
driven by Playwright in Debian's chromium.

Playwright's sync API keeps an asyncio loop running in the main thread for the rest of the
session (STACK.md trap 4): Django then refuses ORM calls and async_to_sync. These tests are
marked `browser`, moved to the end of any run, and bin/test runs them in a pytest run of
their own; DJANGO_ALLOW_ASYNC_UNSAFE is set only while they run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from orchestration.demo.seed import demo_seed
from tests.browser import artifacts, browser_type_launch_args  # noqa: F401 (fixtures)
from tests.cycle.workers import ROOT, Worker, private_queue, test_database_url


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """daphne serving codemaestro.asgi on the test database, like production."""

    def __init__(self, data_dir: Path, log_path: Path, queue: str) -> None:
        self.queue = queue
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CODEMAESTRO_DATA_DIR": str(self.data_dir),
            # The worker below listens on this queue only: other test runs share the broker.
            "CELERY_QUEUE": self.queue,
            "DJANGO_SETTINGS_MODULE": "codemaestro.settings",
            "DJANGO_ALLOW_ASYNC_UNSAFE": "",
        }

    def start(self) -> Server:
        env = self.environment()
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True, timeout=120,
        )  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                 "codemaestro.asgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"daphne did not answer:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def stack(transactional_db, tmp_path, artifacts):  # noqa: F811 (the fixture)
    """The demo workspace, served by daphne, with a Celery worker carrying out the runs.

    The test database is transactional: what the test seeds is committed, so the server
    and the worker (other processes) see it; it is flushed afterwards.
    """
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the browser tests run on PostgreSQL and Redis (bin/test)")
    data_dir = tmp_path / "data"
    demo = demo_seed(data_dir=data_dir)
    queue = private_queue()
    server = Server(data_dir, artifacts / "daphne.log", queue)
    worker = Worker("browser-worker@%h", data_dir, artifacts / "worker.log", queue)
    try:
        server.start()
        worker.start()
        yield server, demo
    finally:
        worker.stop()
        server.stop()
