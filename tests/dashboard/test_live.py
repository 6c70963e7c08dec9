"""The live feed end to end over the Redis channel layer: a websocket client per page,
events committed from another thread (as a worker or a request would), fragments received."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from accounts.models import Role
from codemaestro.asgi import application
from orchestration import realtime
from orchestration.executors.command import _mask as command_mask
from orchestration.models import AgentRun, Event, EventKind, RunStatus
from orchestration.processes import run_process
from orchestration.services.events import event_record
from tests.factories import (
    MembershipFactory,
    ProjectFactory,
    RunFactory,
    SubtaskFactory,
    WorkspaceFactory,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the live tests use the Redis layer"),
]
ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def socket(workspace, user=None, *, view: str = "view=room", origin=ORIGIN):
    headers = [origin]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
    return WebsocketCommunicator(application, f"/ws/w/{workspace.code}/?{view}", headers=headers)


def record(workspace, message: str = "something happened", **fields) -> Event:
    """Commit an event from this (synchronous) thread, closing its connection after."""
    fields.setdefault("kind", EventKind.SUBTASK_STAGE)
    try:
        with transaction.atomic():
            return event_record(workspace_id=workspace.pk, message=message, **fields)
    finally:
        connection.close()


async def committed(workspace, message: str = "something happened", **fields) -> Event:
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: record(workspace, message, **fields)
    )


@pytest.fixture
def room(db):
    workspace = WorkspaceFactory()
    project = ProjectFactory(workspace=workspace)
    user = MembershipFactory(workspace=workspace, role=Role.READER).user
    return workspace, project, user


@pytest.mark.asyncio
async def test_a_member_receives_the_timeline_row_and_counts_of_a_committed_event(room):
    workspace, _, user = room
    client = await socket(workspace, user)
    connected, _ = await client.connect()
    assert connected
    # when
    event = await committed(workspace, "subtask T-1 created", kind=EventKind.SUBTASK_CREATED)
    # then
    frame = await client.receive_from(timeout=5)
    assert f'id="event-{event.pk}"' in frame
    assert "subtask T-1 created" in frame
    assert 'id="counts"' in frame and 'id="waiting"' in frame
    assert f'data-event="{event.pk}"' in frame
    await client.disconnect()


@pytest.mark.asyncio
async def test_anonymous_sockets_are_closed_with_4401(room):
    workspace, _, _ = room
    client = await socket(workspace)
    connected, _ = await client.connect()
    assert connected
    assert await client.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}


@pytest.mark.asyncio
async def test_a_member_of_another_workspace_is_closed_with_4403(room):
    workspace, _, _ = room
    outsider = await database_sync_to_async(lambda: MembershipFactory().user)()
    client = await socket(workspace, outsider)
    await client.connect()
    assert await client.receive_output(timeout=2) == {"type": "websocket.close", "code": 4403}


@pytest.mark.asyncio
async def test_a_foreign_origin_is_refused(room):
    workspace, _, user = room
    client = await socket(workspace, user, origin=(b"origin", b"http://evil.example"))
    connected, _ = await client.connect()
    assert not connected


@pytest.mark.asyncio
async def test_a_push_carries_only_the_parts_its_event_changes(room):
    workspace, _, user = room
    client = await socket(workspace, user)
    await client.connect()
    # when: an event that changes no count, no run, no feature
    event = await committed(workspace, "stage changed")
    # then: its row and the cursor only
    frame = await client.receive_from(timeout=5)
    assert f'id="event-{event.pk}"' in frame
    assert 'id="counts"' not in frame and 'id="runs"' not in frame
    await client.disconnect()


@pytest.mark.asyncio
async def test_a_member_of_a_never_receives_the_events_of_b(room):
    workspace_a, _, user_a = room
    workspace_b = await database_sync_to_async(WorkspaceFactory)()
    user_b = await database_sync_to_async(
        lambda: MembershipFactory(workspace=workspace_b, role=Role.ADMIN).user
    )()
    socket_a = await socket(workspace_a, user_a)
    socket_b = await socket(workspace_b, user_b)
    assert (await socket_a.connect())[0] and (await socket_b.connect())[0]
    # when: something happens in B, then in A
    in_b = await committed(workspace_b, "secret of B")
    in_a = await committed(workspace_a, "news of A")
    # then: A gets only its own event, B only its own
    frame_a = await socket_a.receive_from(timeout=5)
    assert f'id="event-{in_a.pk}"' in frame_a and "secret of B" not in frame_a
    assert await socket_a.receive_nothing(timeout=0.5)
    frame_b = await socket_b.receive_from(timeout=5)
    assert f'id="event-{in_b.pk}"' in frame_b
    assert await socket_b.receive_nothing(timeout=0.3)
    await socket_a.disconnect()
    await socket_b.disconnect()


@pytest.mark.asyncio
async def test_fragments_are_sent_after_commit_and_never_for_a_rollback(room):
    workspace, _, user = room
    client = await socket(workspace, user)
    await client.connect()
    release = threading.Event()
    holding = threading.Event()

    def slow_transaction() -> int:
        try:
            with transaction.atomic():
                event = event_record(
                    workspace_id=workspace.pk, kind=EventKind.SUBTASK_STAGE, message="slow"
                )
                holding.set()
                release.wait(5)
            return event.pk
        finally:
            connection.close()

    def rolled_back() -> None:
        try:
            with transaction.atomic():
                event_record(workspace_id=workspace.pk, kind=EventKind.SUBTASK_STAGE, message="x")
                transaction.set_rollback(True)
        finally:
            connection.close()

    loop = asyncio.get_running_loop()
    # when: one transaction rolls back, another is held open
    await loop.run_in_executor(None, rolled_back)
    pending = loop.run_in_executor(None, slow_transaction)
    await loop.run_in_executor(None, holding.wait, 5)
    # then: nothing while it is open
    assert await client.receive_nothing(timeout=0.5)
    # when: it commits
    release.set()
    event_id = await pending
    # then: exactly its fragment arrives
    frame = await client.receive_from(timeout=5)
    assert f'id="event-{event_id}"' in frame
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


@pytest.mark.asyncio
async def test_a_board_page_receives_the_columns_a_transition_changed(room):
    workspace, project, user = room
    subtask = await database_sync_to_async(lambda: SubtaskFactory(project=project))()
    client = await socket(workspace, user, view="view=board")
    await client.connect()
    # when
    await committed(
        workspace,
        "moved",
        kind=EventKind.SUBTASK_TRANSITION,
        subtask=subtask,
        data={"transition": "start", "from": "pending", "to": "in_progress"},
    )
    # then: both columns, each with its own id, swapped out of band
    frame = await client.receive_from(timeout=5)
    assert 'id="col-pending"' in frame and 'id="col-in_progress"' in frame
    assert 'id="col-testing"' not in frame
    assert 'id="timeline"' not in frame  # the board has no timeline to put rows in
    await client.disconnect()


@pytest.mark.asyncio
async def test_a_subtask_page_only_receives_its_own_subtasks_events(room):
    workspace, project, user = room
    mine, other = await database_sync_to_async(
        lambda: (SubtaskFactory(project=project), SubtaskFactory(project=project))
    )()
    client = await socket(workspace, user, view=f"view=subtask&code={mine.code}")
    await client.connect()
    # when
    await committed(workspace, "about the other", subtask=other)
    event = await committed(workspace, "about mine", subtask=mine)
    # then: the other's event only moves the cursor; mine brings its row and header
    first = await client.receive_from(timeout=5)
    assert "about the other" not in first and 'id="live-cursor"' in first
    second = await client.receive_from(timeout=5)
    assert f'id="event-{event.pk}"' in second and f'id="subtask-{mine.code}"' in second
    await client.disconnect()


def test_the_resync_endpoint_returns_what_a_page_missed(room):
    # given
    workspace, _, user = room
    seen = record(workspace, "seen")
    missed = [record(workspace, f"missed {n}") for n in range(3)]
    client = Client()
    client.force_login(user)
    # when
    response = client.get(
        reverse("dashboard:live", args=[workspace.code]), {"view": "room", "after": seen.pk}
    )
    # then: the rows after `after`, newest first, and the cursor at the newest
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="event-{seen.pk}"' not in html
    positions = [html.index(f'id="event-{e.pk}"') for e in reversed(missed)]
    assert positions == sorted(positions)
    assert f'data-event="{missed[-1].pk}" data-prev="{seen.pk}"' in html


def test_a_channel_layer_that_is_down_never_fails_the_change(room, monkeypatch):
    # given
    workspace, _, _ = room

    class Broken:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(realtime, "get_channel_layer", lambda: Broken())
    # when
    event = record(workspace, "still recorded")
    # then
    assert Event.objects.filter(pk=event.pk, message="still recorded").exists()


def stream_command(run, code: str, secrets: dict[str, str]) -> None:
    """Run a real command whose output streams to the run's page, as the command executor
    does (masking the run's granted secrets), from this synchronous thread."""
    live = realtime.RunLogStream(
        workspace_id=run.workspace_id,
        run_id=run.pk,
        run_code=str(run.code),
        mask=lambda text: command_mask(text, secrets),
        store_every=0,
    )
    try:
        run_process(
            [sys.executable, "-c", code], cwd=Path.cwd(), env={"PATH": "/usr/bin"}, timeout=20,
            on_output=live.feed,
        )  # fmt: skip
    finally:
        live.close()
        connection.close()


@pytest.mark.asyncio
async def test_a_run_page_receives_the_output_as_it_comes_with_secrets_masked(room):
    workspace, project, user = room
    run = await database_sync_to_async(
        lambda: RunFactory(subtask=SubtaskFactory(project=project), status=RunStatus.RUNNING)
    )()
    client = await socket(workspace, user, view=f"view=run&code={run.code}")
    await client.connect()
    secret = "sk-live-0123456789abcdef"
    code = (
        "import sys, time\n"
        "print('collecting tests', flush=True)\n"
        "time.sleep(0.6)\n"
        f"print('using key {secret}', flush=True)\n"
        "sys.stdout.write('no newline at the end')\n"
    )
    # when: the command prints, pauses, prints again
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: stream_command(run, code, {"API_KEY": secret})
    )
    # then: the lines arrive in batches, in order, with their offsets, the key masked
    frames = [await client.receive_from(timeout=5) for _ in range(3)]
    assert "collecting tests" in frames[0] and 'data-start="0"' in frames[0]
    assert f'hx-swap-oob="beforeend:#run-log-{run.code}"' in frames[0]
    assert "[secret API_KEY]" in frames[1] and secret not in "".join(frames)
    assert f'data-start="{len("collecting tests") + 1}"' in frames[1]
    assert "no newline at the end" in frames[2]
    # and the output so far is on the run, where a reconnecting page re-reads it
    stored = await database_sync_to_async(lambda: AgentRun.objects.get(pk=run.pk).output)()
    assert stored.startswith("collecting tests\nusing key [secret API_KEY]")
    await client.disconnect()


@pytest.mark.asyncio
async def test_other_pages_never_receive_a_runs_output(room):
    workspace, project, user = room
    run, other = await database_sync_to_async(
        lambda: (
            RunFactory(subtask=SubtaskFactory(project=project)),
            RunFactory(subtask=SubtaskFactory(project=project)),
        )
    )()
    room_page = await socket(workspace, user)
    other_run_page = await socket(workspace, user, view=f"view=run&code={other.code}")
    await room_page.connect()
    await other_run_page.connect()
    # when
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: stream_command(run, "print('only for its page')", {})
    )
    # then
    assert await room_page.receive_nothing(timeout=0.7)
    assert await other_run_page.receive_nothing(timeout=0.1)
    await room_page.disconnect()
    await other_run_page.disconnect()


def test_a_stored_live_copy_never_overwrites_a_finished_runs_output(room):
    # given: a run that finished while its last batch was on the way
    _, project, _ = room
    run = RunFactory(subtask=SubtaskFactory(project=project), status=RunStatus.SUCCEEDED)
    AgentRun.objects.filter(pk=run.pk).update(output="final output")
    # when
    stream_command(run, "print('late line')", {})
    # then
    assert AgentRun.objects.get(pk=run.pk).output == "final output"


def test_a_multi_line_secret_never_reaches_the_live_log_a_line_at_a_time(room):
    # given: a key of several lines, printed one line per chunk
    _, project, _ = room
    run = RunFactory(subtask=SubtaskFactory(project=project), status=RunStatus.RUNNING)
    key = (
        "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----"
    )
    code = (
        "import sys, time\n"
        f"for line in {key.splitlines()!r}:\n"
        "    print(line, flush=True); time.sleep(0.3)\n"
        "print('done', flush=True); time.sleep(0.3)\n"
    )
    # when
    stream_command(run, code, {"DEPLOY_KEY": key})
    # then: what was published (and stored for re-sync) holds none of its lines
    stored = AgentRun.objects.get(pk=run.pk).output
    assert "[secret DEPLOY_KEY]" in stored
    assert "MIIEvQIBADANBgkqhkiG9w0B" not in stored and "AQEFAASCBKcwggSjAgEAAoIB" not in stored
