"""Row locks taken by services before they change an object.

On PostgreSQL these are SELECT … FOR UPDATE; on SQLite the IMMEDIATE transaction already
serialises writers, so the lock is a plain read there.
"""

from __future__ import annotations

from orchestration.models import FeatureRequest, Project, Subtask


def lock_subtask(pk: int) -> Subtask:
    return Subtask.objects.select_for_update(of=("self",)).get(pk=pk)


def lock_feature(pk: int) -> FeatureRequest:
    return FeatureRequest.objects.select_for_update(of=("self",)).get(pk=pk)


def lock_project(pk: int) -> Project:
    """Serialises changes to one project's subtask graph (dependency edges)."""
    return Project.objects.select_for_update(of=("self",)).get(pk=pk)
