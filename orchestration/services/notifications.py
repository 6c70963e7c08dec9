"""Telling humans when the agents stop: escalations and handoffs that wait for a person.

Delivery is a Celery task after commit: a JSON POST to the project's webhook (Slack-style
incoming hooks accept it), with a short timeout, retried on network errors; without a
webhook the escalation is logged and stays visible in the dashboard's waiting list.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from urllib.parse import urlparse

from orchestration.models import Event
from orchestration.policy import policy_for
from orchestration.services.effects import enqueue_on_commit

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5


def notify_on_commit(event: Event) -> None:
    from orchestration import tasks

    enqueue_on_commit(tasks.notify, event.pk)


def payload(event: Event) -> dict:
    subtask = event.subtask
    return {
        "text": f"CodeMaestro needs a human: {event.message}",
        "event": {"id": event.pk, "kind": event.kind, "at": event.created_at.isoformat()},
        "subtask": None
        if subtask is None
        else {"id": str(subtask.code), "key": subtask.key, "status": subtask.status},
        "reason": event.data.get("reason", ""),
    }


def deliver(event_id: int) -> None:
    event = Event.objects.select_related("subtask", "project").filter(pk=event_id).first()
    if event is None or event.project is None:
        return
    url = policy_for(event.project).notify_webhook
    if not url:
        log.warning("escalation without webhook: %s", event.message)
        return
    if urlparse(url).scheme not in ("http", "https"):
        log.error("notify_webhook of %s is not an http(s) URL; not sent", event.project.name)
        return
    body = json.dumps(payload(event)).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        response.read(1024)
