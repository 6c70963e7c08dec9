"""The live pages' websocket: one connection per open page, scoped to one workspace.

On connect the user must be signed in (else close 4401) and a member of the workspace
(else 4403 — an outsider learns nothing). It then listens to the workspace's group, where
services announce committed events (orchestration.realtime), and sends the page the
fragments those events changed, rendered for this user's rights.

Rendering needs the database and is the same for every page of the same kind and rights,
so a process renders each (event, page, rights) once and shares the result with all its
connections: with 200 open control rooms an event costs one render, not 200.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import live, selectors
from orchestration.realtime import workspace_group

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
RECHECK_SECONDS = 60  # membership removed while a page is open stops its feed this soon


class FrameCache:
    """Process-wide: each frame is rendered by the first connection that needs it."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.frames: OrderedDict[tuple, asyncio.Future] = OrderedDict()

    async def get(self, key: tuple, render) -> str:
        future = self.frames.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.frames[key] = future
            while len(self.frames) > self.size:
                self.frames.popitem(last=False)
            try:
                future.set_result(await render())
            except Exception as exc:
                future.set_exception(exc)
                self.frames.pop(key, None)
                raise
        return await asyncio.shield(future)


frames = FrameCache()


def _render_frame(workspace, view: live.LiveView, event_id: int, rights) -> str:
    event = selectors.event_rows(workspace.pk).filter(pk=event_id).first()
    if event is None:  # not this workspace's event: nothing crosses workspaces
        return ""
    prev_id = selectors.previous_event_id(workspace.pk, event_id)
    return live.render_updates(workspace, view, [event], rights, prev_id=prev_id)


def _access(user, code):
    if not getattr(user, "is_authenticated", False):
        return CLOSE_UNAUTHENTICATED, None, None
    workspace = selectors.workspace_for(user, code)
    if workspace is None:
        return CLOSE_FORBIDDEN, None, None
    return None, workspace, selectors.rights_in(user, workspace.pk)


class WorkspaceConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.code = self.scope["url_route"]["kwargs"]["code"]
        refused, workspace, rights = await database_sync_to_async(_access)(
            self.scope.get("user"), self.code
        )
        if refused:
            # Accept, then close with a code: a refused handshake looks like a network
            # error to the browser, which would retry for ever.
            await self.accept()
            await self.close(code=refused)
            return
        self.workspace = workspace
        self.rights = rights
        self.view = live.LiveView.from_query_string(self.scope.get("query_string", b""))
        self.checked_at = time.monotonic()
        self.group = workspace_group(workspace.pk)
        # Subscribed before the page learns it is connected: its re-sync then covers
        # everything up to the first pushed event.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Pages only listen; anything they send is ignored."""

    async def event_created(self, message: dict) -> None:
        if not await self._still_allowed():
            return
        event_id = int(message["event_id"])
        key = (event_id, self.workspace.pk, self.view, self.rights)
        try:
            frame = await frames.get(
                key,
                lambda: database_sync_to_async(_render_frame)(
                    self.workspace, self.view, event_id, self.rights
                ),
            )
        except Exception:
            # The page re-syncs over HTTP; a bad render must not close the socket.
            log.exception("could not render event %s for a live page", event_id)
            return
        if frame:
            await self.send(text_data=frame)

    async def run_log(self, message: dict) -> None:
        if self.view.kind == "run" and self.view.code == message.get("run"):
            await self.send(text_data=live.render_run_log(message["run"], message["lines"]))

    async def _still_allowed(self) -> bool:
        if time.monotonic() - self.checked_at < RECHECK_SECONDS:
            return True
        refused, _, rights = await database_sync_to_async(_access)(
            self.scope.get("user"), self.code
        )
        if refused:
            await self.close(code=refused)
            return False
        self.rights, self.checked_at = rights, time.monotonic()
        return True
