from __future__ import annotations

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.services import token_create_for_agent, token_create_for_user
from codemaestro.celery import app as celery_app
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, WorkspaceFactory

# Two test runs on one Redis (a developer's and CI's, or parallel helpers) must not hear each
# other's live updates; subprocesses the tests start inherit the same prefix.
os.environ.setdefault("CHANNELS_PREFIX", f"cmtest{os.getpid()}")
for _layer in settings.CHANNEL_LAYERS.values():
    if "hosts" in _layer.get("CONFIG", {}):
        _layer["CONFIG"]["prefix"] = os.environ["CHANNELS_PREFIX"]


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run inline when their transaction commits, unless a test starts real workers."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def rate_limits_off(monkeypatch):
    """API rate limits stay out of tests about other things (tests/ratelimits turns them on)."""
    monkeypatch.setitem(settings.RATELIMIT, "ENABLED", False)


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def project(workspace):
    return ProjectFactory(workspace=workspace)


@pytest.fixture
def member(workspace):
    """Return a factory: member(role) → a user with that role in `workspace`."""

    def make(role: str = Role.AUTHOR, ws=None):
        return MembershipFactory(workspace=ws or workspace, role=role).user

    return make


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def api_as(member, workspace):
    """api_as(role) → an APIClient authenticated by a personal token of a member with role."""

    def make(role: str = Role.AUTHOR, ws=None):
        user = member(role, ws)
        _, raw = token_create_for_user(user=user, name="test")
        client = client_for(raw)
        client.user = user
        return client

    return make


@pytest.fixture
def agent_api(workspace):
    """agent_api(role) → an APIClient authenticated by an agent token of `workspace`."""

    def make(role: str = "developer", ws=None):
        _, raw = token_create_for_agent(workspace=ws or workspace, role=role, name=f"{role}-bot")
        return client_for(raw)

    return make


@pytest.fixture
def outsider_api(db):
    user = UserFactory()
    _, raw = token_create_for_user(user=user, name="outsider")
    return client_for(raw)
