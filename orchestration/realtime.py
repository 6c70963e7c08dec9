"""Realtime: tell the live pages that an event was committed.

Only a tiny message goes through the channel layer — `{"type": "event.created",
"event_id": N}` to the group of the event's workspace — and each websocket consumer renders
what its own user may see (dashboard/consumers.py). Delivery is at-most-once: the pages
re-sync over HTTP with `?after=<last event id>`, so a lost message costs a delay, never
data. Publishing happens after commit and never fails the caller: the change is already
committed, and a channel layer that is down must not turn it into an error.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
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


def publish(workspace_id: int, message: dict) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(workspace_group(workspace_id), message)
        return True
    except Exception:  # redis down, layer full, a loop problem: the pages re-sync over HTTP
        log.warning("could not publish %s to workspace %s", message, workspace_id, exc_info=True)
        return False
