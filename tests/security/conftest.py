"""One world of two workspaces for the security tests, rolled back when they end.

Each test runs in its own savepoint inside it (pytest-django's `db`), so whatever a request
changes is gone before the next test, and the world is built once for the whole package
(the matrix, mass assignment and fuzzing share it), not once per test.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from review.diffs.fragments import clear_local_caches
from tests.security.world import PEOPLE, Side, World, build_world


@pytest.fixture(scope="package")
def world(django_db_setup, django_db_blocker, tmp_path_factory) -> World:
    with django_db_blocker.unblock():
        block = transaction.atomic()
        # The services open durable transactions; Django allows that only directly inside
        # a test case's own atomic block, which this one stands in for.
        block._from_testcase = True
        block.__enter__()
        try:
            built = build_world(tmp_path_factory.mktemp("repos"))
            for side in (built.own, built.foreign):
                side.sessions = {role: _session(side.users[role]) for role in PEOPLE}
            built.outsider_session = _session(built.outsider)
            yield built
        finally:
            transaction.set_rollback(True)
            block.__exit__(None, None, None)
            # Diff fragments are cached by change set id: ids come back after the rollback.
            cache.clear()
            clear_local_caches()


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def client_as(world: World, side: Side | None, role: str, *, page: bool) -> Client:
    """A client signed in as `role` of `side` (a session for pages, the API key for the API)."""
    if page and role in ("anonymous", "agent"):
        return Client()  # an agent's token signs nobody in on pages
    if role == "anonymous":
        return APIClient()
    if page:
        client = Client()
        key = world.outsider_session if role == "outsider" else side.sessions[role]
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        return client
    client = APIClient()
    key = world.outsider_key if role == "outsider" else side.keys[role]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client
