from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings

from ratelimits import counters
from ratelimits.services import forget_cached

BACKENDS = ["redis", "sql"]


@pytest.fixture(autouse=True)
def rate_limits_on(monkeypatch):
    """Limits on, with counters of this test's own (a Redis key outlives a test by a minute)."""
    monkeypatch.setitem(settings.RATELIMIT, "ENABLED", True)
    monkeypatch.setitem(settings.RATELIMIT, "PREFIX", f"cmrltest-{uuid.uuid4().hex}")
    forget_cached()
    yield
    forget_cached()


@pytest.fixture(params=BACKENDS)
def backend(request, settings) -> str:
    """Each test runs on Redis (when REDIS_URL is set) and on the SQL counters."""
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("REDIS_URL is not set")
        settings.REDIS_URL = os.environ["REDIS_URL"]
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture
def short_window(monkeypatch):
    monkeypatch.setattr(counters, "WINDOW_MS", 1000)
