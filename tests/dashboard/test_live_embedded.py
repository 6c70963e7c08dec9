"""The live feed on the embedded default: SQLite and the channels-lite layer."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction

from orchestration import realtime
from orchestration.models import EventKind
from orchestration.services.events import event_record
from tests.factories import WorkspaceFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="channels-lite runs on the embedded default's SQLite only",
    ),
]


def record_in_a_request(workspace) -> int:
    try:
        with transaction.atomic():
            event = event_record(
                workspace_id=workspace.pk, kind=EventKind.SUBTASK_STAGE, message="from a request"
            )
        return event.pk
    finally:
        connection.close()


@pytest.mark.asyncio
async def test_an_event_committed_in_a_request_thread_is_published(monkeypatch):
    # given: channels-lite, whose sends go through sync_to_async
    from channels_lite.layers.core import SQLiteChannelLayer

    workspace = await database_sync_to_async(WorkspaceFactory)()
    layer = SQLiteChannelLayer(database="default")
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: layer)
    channel = await layer.new_channel()
    await layer.group_add(realtime.workspace_group(workspace.pk), channel)
    # when: a view's sync thread (asgiref's single thread executor) commits an event
    event_id = await database_sync_to_async(record_in_a_request)(workspace)
    # then: the publisher's loop did not take the send for a deadlock
    message = await asyncio.wait_for(layer.receive(channel), timeout=10)
    assert message == {"type": realtime.EVENT_CREATED, "event_id": event_id}
