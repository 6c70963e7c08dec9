"""The live pages' websocket: one connection per open page, scoped to one workspace.

On connect the user must be signed in (else close 4401) and a member of the workspace
(else 4403 — an outsider learns nothing). The page then joins its process's feed of the
workspace (dashboard/fanout.py), which listens to the group where services announce
committed events (orchestration.realtime), renders each event once per kind of page and
rights, and pushes the frame to every page that shows it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import live, selectors
from dashboard.fanout import hub

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
RECHECK_SECONDS = 60  # membership removed while a page is open stops its feed this soon


def _access(user, code):
    if not getattr(user, "is_authenticated", False):
        return CLOSE_UNAUTHENTICATED, None, None
    workspace = selectors.workspace_for(user, code)
    if workspace is None:
        return CLOSE_FORBIDDEN, None, None
    return None, workspace, selectors.rights_in(user, workspace.pk)


class WorkspaceConsumer(AsyncWebsocketConsumer):
    workspace = None

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
        self.held: list[str] | None = None  # frames that wait for a membership recheck
        self.rechecking: asyncio.Task | None = None
        # Subscribed before the page learns it is connected: its re-sync then covers
        # everything up to the first pushed event.
        await hub().join(self, workspace.pk)
        await self.accept()

    async def disconnect(self, code) -> None:
        if self.workspace is not None:
            await hub().leave(self, self.workspace.pk)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Pages only listen; anything they send is ignored."""

    async def push(self, frame: str) -> None:
        """Send a frame from the feed, unless this user's membership is due a recheck."""
        if self.held is not None:
            self.held.append(frame)
        elif time.monotonic() - self.checked_at >= RECHECK_SECONDS:
            # The feed does not wait for the database: the frame waits with this page.
            self.held = [frame]
            self.rechecking = asyncio.create_task(self._recheck())
        else:
            await self.send(text_data=frame)

    async def _recheck(self) -> None:
        try:
            refused, _, rights = await database_sync_to_async(_access)(
                self.scope.get("user"), self.code
            )
        except Exception:
            log.exception("could not recheck a live page's membership")
            refused, rights = None, self.rights
        held, self.held = self.held or [], None
        if refused:
            await hub().leave(self, self.workspace.pk)
            await self.close(code=refused)
            return
        self.rights, self.checked_at = rights, time.monotonic()
        for frame in held:
            await self.send(text_data=frame)
