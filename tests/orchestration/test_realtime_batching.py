"""Events committed close together in one process reach the pages in one message."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.layers import get_channel_layer

from orchestration import realtime


@pytest.mark.asyncio
async def test_events_committed_while_the_publisher_is_busy_leave_in_one_message_in_order():
    layer = get_channel_layer()
    group = realtime.workspace_group(987_654)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        # given: the publisher's loop is busy (as it is under a burst of claims)
        loop = realtime._publisher.loop()
        busy, release = threading.Event(), threading.Event()

        def hold() -> None:
            busy.set()
            release.wait(10)

        loop.call_soon_threadsafe(hold)
        assert busy.wait(10)
        # when: 50 events commit meanwhile
        for event_id in range(1, 51):
            realtime.publish_event(987_654, event_id)
        release.set()
        # then: one message announces all of them, oldest first
        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
        assert realtime.event_ids(message) == list(range(1, 51))
        assert message["event_id"] == 50
        # and a lone event later still travels as the single-event message it always was
        realtime.publish_event(987_654, 51)
        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
        assert message == {"type": realtime.EVENT_CREATED, "event_id": 51}
    finally:
        await layer.group_discard(group, channel)


@pytest.mark.django_db
def test_a_runs_first_output_is_stored_before_it_is_pushed_so_a_re_read_finds_it():
    from orchestration.models import AgentRun, RunStatus
    from tests.factories import RunFactory

    run = RunFactory(status=RunStatus.RUNNING)
    live = realtime.RunLogStream(
        workspace_id=run.workspace_id, run_id=run.pk, run_code=str(run.code), store_every=60
    )
    live.feed(b"collecting 7 items\n")
    assert AgentRun.objects.get(pk=run.pk).output == "collecting 7 items\n"


def test_warm_up_starts_the_publisher_before_any_event():
    import time

    realtime.warm_up()
    loop = realtime._publisher.loop()
    deadline = time.monotonic() + 5
    while not loop.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.is_running()
