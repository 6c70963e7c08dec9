"""The change set page's websocket: says "something of this change set changed", nothing more.

Services already announce every committed Event to the workspace's group
(orchestration.realtime); this consumer listens there and, for an event of the change
set's feature (a comment, a reply, a resolution, a decision, a merge), tells its page. The
page then pulls what changed through the permission-checked HTTP re-sync (the `poll`
view), the same one it uses after a reconnect: no diff or comment text travels over the
websocket, so what a user sees is always rendered for their rights by a normal view.
"""

from __future__ import annotations

import json

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db.models import Q

from accounts.permissions import Principal
from orchestration.models import Event
from orchestration.realtime import event_ids, workspace_group
from review import selectors

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404  # not a member, or no such change set: the same answer


def _changeset_for(user, code) -> tuple[int, int, int] | None:
    changeset = selectors.changeset_for(Principal(user=user), code)
    if changeset is None:
        return None
    return changeset.pk, changeset.workspace_id, changeset.feature_id


def _concerns(ids: list[int], workspace_id: int, feature_id: int) -> int | None:
    """The newest of these events that is about the change set's feature, if any."""
    return (
        Event.objects.filter(pk__in=ids, workspace_id=workspace_id)
        .filter(Q(feature_id=feature_id) | Q(subtask__feature_id=feature_id))
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )


class ChangeSetConsumer(AsyncWebsocketConsumer):
    group = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not getattr(user, "is_authenticated", False):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        code = self.scope["url_route"]["kwargs"]["code"]
        found = await database_sync_to_async(_changeset_for)(user, code)
        if found is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        _, self.workspace_id, self.feature_id = found
        self.group = workspace_group(self.workspace_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def dispatch(self, message: dict) -> None:
        # The workspace group also carries messages meant for other pages (agent log
        # lines…): those are none of this page's business, not an error.
        if getattr(self, get_handler_name(message), None) is None:
            return
        await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page only listens."""

    async def event_created(self, message: dict) -> None:
        ids = event_ids(message)
        if not ids:
            return
        event_id = await database_sync_to_async(_concerns)(ids, self.workspace_id, self.feature_id)
        if event_id is not None:
            await self.send(text_data=json.dumps({"type": "changed", "event": event_id}))
