"""One subscription per workspace per server process, fanning rendered frames out to pages.

A consumer per open page that listens to the workspace's group itself makes every event
cost one layer delivery, one dispatch and one trip through the shared sync thread per
page, and the pages' wake-ups fight the render for the GIL: 100 open control rooms made an
event's last frame wait ~100 times longer than its first. Here a process listens once per
workspace, renders each event once per kind of page (view and rights) in a single trip to
the database thread, and writes the same frame to every page showing that view.

The feed lives in the event loop that serves the sockets (daphne has one; tests make one
per test), starts with its workspace's first page and stops with its last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from channels.layers import get_channel_layer
from django import db

from dashboard import live
from dashboard.selectors import Rights
from orchestration.realtime import EVENT_CREATED, RUN_LOG, event_ids, workspace_group

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
YIELD_EVERY = 10
# The group membership is re-asserted this often: a Redis restart (or the core layer's
# group expiry) may have forgotten it, and the pages would hear nothing until they reload.
RESUBSCRIBE_SECONDS = 30.0


class Page(Protocol):
    """What the feed needs of a connected page (dashboard.consumers.WorkspaceConsumer)."""

    workspace: object
    view: live.LiveView
    rights: Rights

    async def push(self, frame: str) -> None: ...


class Feed:
    """One workspace's live events in this process."""

    def __init__(self, workspace_id: int, layer, renderer: Renderer) -> None:
        self.workspace_id = workspace_id
        self.renderer = renderer
        self.group = workspace_group(workspace_id)
        self.layer = layer
        self.pages: set[Page] = set()
        self.channel = ""
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        # Subscribed before the first page is accepted: its re-sync covers everything
        # committed up to the first pushed event.
        # The layer's default prefix: the core Redis layer pops all of a process's
        # channels from one list, named after it; another prefix would starve there.
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self.tasks = [
            asyncio.create_task(self._listen(), name=f"live-feed-{self.workspace_id}"),
            asyncio.create_task(self._stay_subscribed()),
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # Redis down: the subscription dies with it
            await self.layer.group_discard(self.group, self.channel)

    async def _listen(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: the pages re-sync over HTTP
                log.warning("live feed of workspace %s: %s", self.workspace_id, exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                await self.deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bad render must not stop the feed; the pages re-sync over HTTP.
                log.exception("live feed of workspace %s could not deliver", self.workspace_id)

    async def _stay_subscribed(self) -> None:
        while True:
            await asyncio.sleep(RESUBSCRIBE_SECONDS)
            try:
                await self.layer.group_add(self.group, self.channel)
            except Exception as exc:
                log.warning("live feed of workspace %s: %s", self.workspace_id, exc)

    async def deliver(self, message: dict) -> None:
        if message.get("type") == EVENT_CREATED:
            for event_id in event_ids(message):
                await self._event(event_id)
        elif message.get("type") == RUN_LOG:
            await self._run_log(
                str(message.get("run", "")),
                str(message.get("lines", "")),
                int(message.get("start", 0)),
            )

    async def _event(self, event_id: int) -> None:
        readers: dict[tuple[live.LiveView, Rights], list[Page]] = defaultdict(list)
        for page in self.pages:
            readers[(page.view, page.rights)].append(page)
        if not readers:
            return
        workspace = next(iter(self.pages)).workspace
        frames = await self.renderer.run(
            live.render_event_frames, workspace, event_id, list(readers)
        )
        for key, frame in frames.items():
            if frame:
                await _send_all(readers[key], frame)

    async def _run_log(self, run_code: str, lines: str, start: int) -> None:
        watching = [p for p in self.pages if p.view.kind == "run" and p.view.code == run_code]
        if watching and lines:
            await _send_all(watching, live.render_run_log(run_code, lines, start))


async def _send_all(pages: list[Page], frame: str) -> None:
    for n, page in enumerate(pages, 1):
        try:
            await page.push(frame)
        except Exception:  # one broken socket must not starve the others
            log.exception("could not push a live frame")
        if n % YIELD_EVERY == 0:
            # daphne (Twisted) writes a socket's frame only when the loop turns: letting it
            # turn now and then gets the first pages their frame before the last is queued.
            await asyncio.sleep(0)


class Renderer:
    """The one thread where a loop's feeds read the database and render, keeping its
    connection between pushes.

    Channels' database_sync_to_async returns the connection to the pool after every call,
    and the pool checks it on the way out again: two round trips per push. The render
    thread has no request cycle, so it keeps one connection while pages are open, drops it
    after a database error (and retries once on a fresh one), and closes it with the feeds.
    """

    def __init__(self) -> None:
        self.executor: ThreadPoolExecutor | None = None

    async def run(self, fn, *args):
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-render")
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, _with_connection, fn, args
        )

    def close(self) -> None:
        if self.executor is not None:
            self.executor.submit(db.connection.close)
            self.executor.shutdown(wait=False)
            self.executor = None


def _with_connection(fn, args):
    try:
        return fn(*args)
    except (db.OperationalError, db.InterfaceError):
        db.connection.close()  # PostgreSQL restarted, the connection went stale: once more
        return fn(*args)
    except Exception:
        db.connection.close()
        raise


class Hub:
    """The feeds of one event loop, by workspace id."""

    def __init__(self) -> None:
        self.feeds: dict[int, Feed] = {}
        self.lock = asyncio.Lock()
        self.renderer = Renderer()

    async def join(self, page: Page, workspace_id: int) -> None:
        async with self.lock:
            feed = self.feeds.get(workspace_id)
            if feed is None:
                feed = Feed(workspace_id, get_channel_layer(), self.renderer)
                await feed.start()
                self.feeds[workspace_id] = feed
            feed.pages.add(page)

    async def leave(self, page: Page, workspace_id: int) -> None:
        async with self.lock:
            feed = self.feeds.get(workspace_id)
            if feed is None or page not in feed.pages:
                return
            feed.pages.discard(page)
            if not feed.pages:
                del self.feeds[workspace_id]
                await feed.stop()
            if not self.feeds:
                self.renderer.close()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (a feed's tasks and layer connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
