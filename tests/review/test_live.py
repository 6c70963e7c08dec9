"""The change set page's websocket over the Redis channel layer: it hears the events of its
change set's feature (and only those) and tells the page to pull; strangers are refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection, transaction
from django.test import Client

from accounts.models import Role
from codemaestro.asgi import application
from orchestration import realtime
from orchestration.models import EventKind
from orchestration.services.events import event_record
from review.models import ChangeSet
from tests.factories import FeatureFactory, MembershipFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the live tests use the Redis layer"),
]
ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def socket(changeset, user=None) -> WebsocketCommunicator:
    headers = [ORIGIN]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
    return WebsocketCommunicator(application, f"/ws/review/c/{changeset.code}/", headers=headers)


def _record(feature, kind=EventKind.REVIEW_COMMENT) -> int:
    try:
        with transaction.atomic():
            event = event_record(
                workspace_id=feature.workspace_id, kind=kind, message="m", feature=feature
            )
        return event.pk
    finally:
        connection.close()


async def committed(feature, kind=EventKind.REVIEW_COMMENT) -> int:
    # From another thread, as a request or a worker commits it.
    return await asyncio.get_running_loop().run_in_executor(None, _record, feature, kind)


@pytest.fixture
def opened(db):
    feature = FeatureFactory()
    changeset = ChangeSet.objects.create(
        workspace=feature.workspace,
        project=feature.project,
        feature=feature,
        branch=feature.branch,
        base_branch="main",
    )
    user = MembershipFactory(workspace=feature.workspace, role=Role.READER).user
    return changeset, user


@pytest.mark.asyncio
async def test_a_comment_on_the_change_set_tells_the_open_page_to_pull(opened):
    changeset, user = opened
    client = await socket(changeset, user)
    assert (await client.connect())[0]
    # when
    event_id = await committed(changeset.feature)
    # then
    assert json.loads(await client.receive_from(timeout=15)) == {
        "type": "changed",
        "event": event_id,
    }
    await client.disconnect()


@pytest.mark.asyncio
async def test_events_of_other_features_and_other_messages_are_not_sent(opened):
    # given: another feature of the same workspace
    changeset, user = opened
    other = await database_sync_to_async(FeatureFactory)(project=changeset.project)
    client = await socket(changeset, user)
    assert (await client.connect())[0]
    # when: its event, and an agent's log lines on the same group
    await committed(other)
    realtime.publish(changeset.workspace_id, {"type": "run.log", "run": "x", "lines": "hi"})
    # then: nothing for this page, and it still hears its own feature afterwards
    assert await client.receive_nothing(timeout=0.5)
    event_id = await committed(changeset.feature, EventKind.REVIEW_APPROVAL)
    assert json.loads(await client.receive_from(timeout=15))["event"] == event_id
    await client.disconnect()


@pytest.mark.asyncio
async def test_strangers_are_refused(opened):
    changeset, _ = opened
    anonymous = await socket(changeset)
    assert await anonymous.connect() == (False, 4401)
    outsider = await database_sync_to_async(UserFactory)()
    stranger = await socket(changeset, outsider)
    assert await stranger.connect() == (False, 4404)
