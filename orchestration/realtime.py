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
import codecs
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable

from channels.layers import get_channel_layer
from django.db import DatabaseError, transaction

from orchestration.models import Event

log = logging.getLogger(__name__)

EVENT_CREATED = "event.created"
# Agent log lines (run output while it is produced) go to the same group; executors
# stream through `RunLogStream`, and pages showing the run append the lines.
RUN_LOG = "run.log"


def workspace_group(workspace_id: int) -> str:
    return f"workspace-{workspace_id}"


def publish_on_commit(event: Event) -> None:
    """Announce `event` to its workspace's live pages once the transaction commits."""
    workspace_id, event_id = event.workspace_id, event.pk
    transaction.on_commit(lambda: publish_event(workspace_id, event_id))


def event_ids(message: dict) -> list[int]:
    """The events one `event.created` message announces, oldest first: events committed
    close together in one process travel in one message (see `_Publisher`)."""
    ids = message.get("event_ids")
    if isinstance(ids, list):
        return [i for i in ids if isinstance(i, int)]
    single = message.get("event_id")
    return [single] if isinstance(single, int) else []


def publish_run_log(*, workspace_id: int, run_code: str, lines: str, start: int = 0) -> None:
    """Send a batch of a running agent's output lines (batch them: the layer has a capacity).

    `start` is the batch's offset in the run's output, from which a page tells a batch it
    already has (after re-reading the output) from one it missed.
    """
    if len(lines) > LOG_BATCH_CHARS:
        start, lines = start + len(lines) - LOG_BATCH_CHARS, lines[-LOG_BATCH_CHARS:]
    publish(workspace_id, {"type": RUN_LOG, "run": run_code, "lines": lines, "start": start})


LOG_BATCH_CHARS = 8000
EVENT_GATHER_SECONDS = 0.002


def _scrub(text: str) -> str:
    """Secret values this process has seen never leave it (accounts/scrubbing.py)."""
    from accounts.scrubbing import scrub

    return scrub(text)


class RunLogStream:
    """A running agent's output, sent to its run page line by line as it is produced.

    Executors feed raw output chunks (from the worker's thread); complete lines are masked
    (`mask`, the executor's own masking of the run's secrets) and scrubbed, then published
    in batches at most every `interval` seconds — a pause in the output still flushes what
    is pending, from a timer. The output so far is also stored on the running run every
    `store_every` seconds: a page that reconnects, or opens mid-run, re-reads it there.
    """

    def __init__(
        self,
        *,
        workspace_id: int,
        run_id: int,
        run_code: str,
        mask: Callable[[str], str] = lambda text: text,
        interval: float = 0.25,
        store_every: float = 2.0,
        store_cap: int = 200_000,
    ) -> None:
        self.workspace_id, self.run_id, self.run_code = workspace_id, run_id, run_code
        self.mask, self.interval, self.store_every = mask, interval, store_every
        self.store_cap = store_cap
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()
        self._partial = ""  # the line being written: never published half (a secret in it)
        self._pending = ""  # complete, masked lines not published yet
        self._sent = ""  # everything published (capped), for the stored copy
        self._offset = 0  # characters published so far
        self._published_at = 0.0
        self._stored_at = time.monotonic()
        self._timer: threading.Timer | None = None

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            text = self._partial + self._decoder.decode(chunk)
            complete, _, self._partial = text.rpartition("\n")
            if complete:
                self._pending += _scrub(self.mask(complete + "\n"))
            due = time.monotonic() - self._published_at >= self.interval
            if self._pending and due:
                self._publish_locked()
            elif self._pending and self._timer is None:
                self._timer = threading.Timer(self.interval, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()
        if time.monotonic() - self._stored_at >= self.store_every:
            self._store()

    def flush(self) -> None:
        with self._lock:
            self._publish_locked()

    def _flush_from_timer(self) -> None:
        from django.db import connection

        try:
            self.flush()
        finally:
            connection.close()  # the timer's thread opened its own connection to store

    def close(self) -> None:
        """Publish what is left, the unfinished last line too."""
        with self._lock:
            rest = self._partial + self._decoder.decode(b"", final=True)
            self._partial = ""
            if rest:
                self._pending += _scrub(self.mask(rest))
            self._publish_locked()

    def _publish_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, ""
        start = self._offset
        self._offset += len(batch)
        first = not self._sent
        if len(self._sent) < self.store_cap:
            self._sent += batch
        if first:
            # Stored before it is pushed: a page that opened (or reconnected) just now
            # re-reads the output and must find at least what it is about to be sent.
            self._store_locked()
        publish_run_log(
            workspace_id=self.workspace_id, run_code=self.run_code, lines=batch, start=start
        )
        self._published_at = time.monotonic()

    def _store(self) -> None:
        with self._lock:
            self._store_locked()

    def _store_locked(self) -> None:
        # Only while the run is still running: its final output, written when it finishes,
        # must never be overwritten by this copy.
        from orchestration.models import AgentRun, RunStatus

        text, self._stored_at = self._sent[: self.store_cap], time.monotonic()
        if self.run_id is None:  # a run never saved (a dry run) has nowhere to keep it
            return
        try:
            AgentRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(output=text)
        except DatabaseError as exc:  # the live copy is a convenience; the run goes on
            log.warning("could not store the live output of run %s: %s", self.run_code, exc)


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
        # Events committed while the loop was busy wait here and leave in one message per
        # workspace: a busy claimer (one event per claim) would otherwise spend half its CPU
        # waking the loop and sending one Redis message per event.
        self._events: dict[int, list[int]] = {}
        self._flush_pending = False

    def add_event(self, workspace_id: int, event_id: int) -> None:
        loop = self.loop()
        with self._lock:
            self._events.setdefault(workspace_id, []).append(event_id)
            if self._flush_pending:
                return
            self._flush_pending = True
        loop.call_soon_threadsafe(self._flush_soon, context=contextvars.Context())

    def _flush_soon(self) -> None:
        # A moment's wait gathers the events of a burst (a claimer commits one every
        # fraction of a millisecond) for a few milliseconds of added latency.
        self._loop.call_later(EVENT_GATHER_SECONDS, self._flush_events)

    def _flush_events(self) -> None:
        with self._lock:
            events, self._events, self._flush_pending = self._events, {}, False
        for workspace_id, ids in events.items():
            message = {"type": EVENT_CREATED, "event_id": ids[-1]}
            if len(ids) > 1:
                message["event_ids"] = ids
            _send_now(self._loop, workspace_id, message)

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
    if get_channel_layer() is None:
        return False
    loop = _publisher.loop()
    # In an empty context: the caller's (a request's sync thread carries asgiref's markers)
    # must not follow the send into the publisher's loop, where the embedded layer's own
    # sync_to_async would take it for a deadlock and refuse to send.
    loop.call_soon_threadsafe(_send_now, loop, workspace_id, message, context=contextvars.Context())
    return True


def warm_up() -> None:
    """Load the channel layer and start the publisher's loop now, so the first event after
    a process starts does not pay for importing the layer and starting a thread."""
    if get_channel_layer() is not None:
        _publisher.loop()


def publish_event(workspace_id: int, event_id: int) -> bool:
    """Announce a committed event to the workspace's pages; False if there is no layer."""
    if get_channel_layer() is None:
        return False
    _publisher.add_event(workspace_id, event_id)
    return True


def _send_now(loop: asyncio.AbstractEventLoop, workspace_id: int, message: dict) -> None:
    layer = get_channel_layer()
    task = loop.create_task(layer.group_send(workspace_group(workspace_id), message))
    task.add_done_callback(lambda done: _log_failure(done, workspace_id, message))


def _log_failure(done, workspace_id: int, message: dict) -> None:
    # Redis down, layer full: the pages re-sync over HTTP, so a warning is enough.
    if not done.cancelled() and done.exception() is not None:
        log.warning(
            "could not publish %s to workspace %s: %s", message, workspace_id, done.exception()
        )
