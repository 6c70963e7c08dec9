"""Realtime: tell the live pages that an event was committed.

Only a tiny message goes through the channel layer — `{"type": "event.created",
"event_id": N}` to the group of the event's workspace — and each websocket consumer renders
what its own user may see (dashboard/consumers.py). Delivery is at-most-once: the pages
re-sync over HTTP with `?after=<last event id>`, so a lost message costs a delay, never
data. Publishing happens after commit and never fails the caller: the change is already
committed, and a channel layer that is down must not turn it into an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer
from django.db import transaction

from orchestration.models import Event

log = logging.getLogger(__name__)

EVENT_CREATED = "event.created"
# Agent log lines (run output while it is produced) go to the same group; executors that
# stream call `publish_run_log`, and pages showing the run append the lines.
RUN_LOG = "run.log"


def workspace_group(workspace_id: int) -> str:
    return f"workspace-{workspace_id}"


def publish_on_commit(event: Event) -> None:
    """Announce `event` to its workspace's live pages once the transaction commits."""
    workspace_id, event_id = event.workspace_id, event.pk
    transaction.on_commit(
        lambda: publish(workspace_id, {"type": EVENT_CREATED, "event_id": event_id})
    )


def publish_run_log(*, workspace_id: int, run_code: str, lines: str) -> None:
    """Send a batch of a running agent's output lines (batch them: the layer has a capacity)."""
    publish(workspace_id, {"type": RUN_LOG, "run": run_code, "lines": lines[-8000:]})


class _Publisher:
    """One event loop per process, in a thread of its own, that sends to the channel layer.

    `async_to_sync` would start a fresh loop for every call, and the Redis layer keeps its
    connections per loop: every event would pay for a new connection. Here the connection
    lives as long as the process, and the caller never waits for the send.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked worker process inherits the object but not the thread: start anew.
            if self._loop is None or self._pid != os.getpid():
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                threading.Thread(
                    target=self._loop.run_forever, name="realtime-publisher", daemon=True
                ).start()
            return self._loop


_publisher = _Publisher()


def publish(workspace_id: int, message: dict) -> bool:
    """Hand `message` to the layer's group of the workspace; False if there is no layer."""
    layer = get_channel_layer()
    if layer is None:
        return False
    sent = asyncio.run_coroutine_threadsafe(
        layer.group_send(workspace_group(workspace_id), message), _publisher.loop()
    )
    sent.add_done_callback(lambda done: _log_failure(done, workspace_id, message))
    return True


def _log_failure(done, workspace_id: int, message: dict) -> None:
    # Redis down, layer full: the pages re-sync over HTTP, so a warning is enough.
    if not done.cancelled() and done.exception() is not None:
        log.warning(
            "could not publish %s to workspace %s: %s", message, workspace_id, done.exception()
        )
