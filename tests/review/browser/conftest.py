"""Browser tests of the review: Playwright driving Debian's chromium against daphne (the
websocket needs the ASGI server) with a Celery worker for the merge, on the test database.

Marked `browser`: bin/test runs them in a pytest run of their own, after the rest
(Playwright's sync API leaves an asyncio loop running in the main thread; STACK.md trap 4).
"""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.browser import artifacts, browser_type_launch_args  # noqa: F401 (fixtures)
from tests.cycle.workers import Worker, private_queue
from tests.dashboard.browser.conftest import Server


@pytest.fixture
def served(transactional_db, setup, artifacts):  # noqa: F811 (the fixture)
    """daphne and a worker on the test database and `setup`'s data folder."""
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the browser tests run on PostgreSQL and Redis (bin/test)")
    queue = private_queue()
    server = Server(settings.DATA_DIR, artifacts / "review-daphne.log", queue)
    worker = Worker("review-worker@%h", settings.DATA_DIR, artifacts / "review-worker.log", queue)
    try:
        server.start()
        worker.start()
        yield server
    finally:
        worker.stop()
        server.stop()
