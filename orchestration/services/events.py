from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from orchestration.models import AgentRun, Event, FeatureRequest, Project, Subtask


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
    project_id = project.pk if project else None
    feature_id = feature.pk if feature else None
    for owner in (subtask, run):
        if owner is not None:
            project_id = project_id or owner.project_id
            feature_id = feature_id or owner.feature_id
    if feature is not None:
        project_id = project_id or feature.project_id
    return Event.objects.create(
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
    )
