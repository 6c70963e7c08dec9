from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.postgres.search import SearchVector
from django.db import connection
from django.db.models import Value
from django.utils import timezone

from accounts.scrubbing import scrub, scrub_data
from orchestration import realtime
from orchestration.models import AgentRun, Event, EventKind, FeatureRequest, Project, Subtask


def event_record(
    *,
    workspace_id: int,
    kind: str,
    message: str,
    actor: str = "",
    project: Project | None = None,
    feature: FeatureRequest | None = None,
    subtask: Subtask | None = None,
    run: AgentRun | None = None,
    data: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> Event:
    """Append an Event in the caller's transaction; it commits or rolls back with the change.

    `created_at` is for history that happened elsewhere (legacy imports); otherwise now.
    """
    # Events are shown, searched and pushed live: no secret value may be in them.
    message, data = scrub(message), scrub_data(data)
    project_id = project.pk if project else None
    feature_id = feature.pk if feature else None
    for owner in (subtask, run):
        if owner is not None:
            project_id = project_id or owner.project_id
            feature_id = feature_id or owner.feature_id
    if feature is not None:
        project_id = project_id or feature.project_id
    event = Event.objects.create(
        workspace_id=workspace_id,
        kind=kind,
        message=message[:500],
        actor=actor[:120],
        project_id=project_id,
        feature_id=feature_id,
        subtask_id=subtask.pk if subtask else (run.subtask_id if run else None),
        run=run,
        data=data or {},
        created_at=created_at or timezone.now(),
        # Events are append-only, so the search document is complete at insert time.
        search_vector=_search_document(message, kind, actor, data, run),
    )
    realtime.publish_on_commit(event)
    return event


SEARCH_CONFIG = "english"
# A tsvector holds at most 1 MB; the head and tail of a long run log carry what is searched.
SEARCH_RUN_TEXT = 60_000


def _search_document(message, kind, actor, data, run) -> SearchVector | None:
    """The event's full-text document: its words, its data's strings, and a run's log.

    A finished run's output and error are indexed with its finishing event, so searching
    for a log line finds the run. Only PostgreSQL has tsvector; elsewhere search scans.
    """
    if connection.vendor != "postgresql":
        return None
    parts = [message, kind.replace(".", " "), actor]
    parts += [str(v) for v in (data or {}).values() if isinstance(v, str | list)]
    if run is not None and kind in (EventKind.RUN_SUCCEEDED, EventKind.RUN_FAILED):
        log = f"{run.output}\n{run.error}"
        if len(log) > SEARCH_RUN_TEXT:
            log = log[: SEARCH_RUN_TEXT // 2] + "\n" + log[-SEARCH_RUN_TEXT // 2 :]
        parts.append(scrub(log))
    return SearchVector(Value("\n".join(parts)), config=SEARCH_CONFIG)
