"""Storing a validated legacy tree in a project: all or nothing, and idempotent.

Subtasks are matched by (project, key) among the project's subtasks outside any feature:
the legacy layout knows no features, and keys are unique only there (a feature's subtasks
are keyed within their feature). A re-import writes only what differs, so importing the
same tree twice leaves no trace the second time. Subtasks the tree does not list are left
alone: an import never deletes work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from orchestration.lock_objects import lock_project
from orchestration.models import (
    Event,
    EventKind,
    Project,
    Subtask,
    SubtaskDependency,
    SubtaskStatus,
)
from orchestration.services.dependencies import apply_dependency_add, apply_dependency_remove
from orchestration.services.events import event_record
from orchestration.services.work import apply_subtask_create
from orchestration.yaml_io.tree import HistoryEntry, LegacySubtask, LegacyTree

ACTOR = "yaml-import"
# event.data["source"] of the events an import writes; legacy history is told apart so the
# exporter can write it back and a re-import can skip what it already stored.
SOURCE_IMPORT = "yaml"
SOURCE_HISTORY = "yaml.history"
# Fields an import owns, compared on every re-import; status is among them on purpose.
FIELDS = (
    "title",
    "status",
    "owner_role",
    "risk",
    "estimate_hours",
    "description",
    "requirements_developer",
    "requirements_tester",
    "blocked_reason",
    "attempts",
)


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dependencies_added: int = 0
    dependencies_removed: int = 0
    history_added: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.dependencies_added
            or self.dependencies_removed
            or self.history_added
        )

    def describe(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged; dependencies: {self.dependencies_added} added, "
            f"{self.dependencies_removed} removed; history entries: {self.history_added} added"
        )


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def managed_subtasks(project: Project) -> QuerySet[Subtask]:
    """The subtasks a legacy tree describes: the project's own, outside any feature."""
    return Subtask.objects.filter(project=project, feature__isnull=True)


def history_hash(key: str, entry: HistoryEntry, occurrence: int) -> str:
    """A stable identity for a history entry, so a re-import recognises what it stored.

    The instant (not its spelling) is hashed, so an export that writes another offset for
    the same moment matches; `occurrence` keeps identical entries of one log apart.
    """
    instant = entry.at.astimezone(UTC).isoformat()
    payload = json.dumps([key, instant, entry.actor, entry.message, occurrence])
    return hashlib.sha256(payload.encode()).hexdigest()


def _create(project: Project, legacy: LegacySubtask, actor: str) -> Subtask:
    values = {name: getattr(legacy, name) for name in FIELDS if name not in ("title", "status")}
    subtask = apply_subtask_create(
        project=project, key=legacy.key, title=legacy.title, actor=actor, **values
    )
    # The status field is protected; an import is the one writer allowed to set a legacy
    # state directly, without walking the lifecycle (and without starting any handoff).
    if legacy.status != SubtaskStatus.PENDING:
        Subtask.objects.filter(pk=subtask.pk).update(status=legacy.status)
    event_record(
        workspace_id=project.workspace_id,
        kind=EventKind.IMPORT,
        message=f"{legacy.key} imported from YAML as {legacy.status}",
        actor=actor,
        subtask=subtask,
        data={
            "source": SOURCE_IMPORT,
            "action": "created",
            "fields": {name: _json(getattr(legacy, name)) for name in FIELDS},
        },
    )
    return subtask


def _update(subtask: Subtask, legacy: LegacySubtask, actor: str) -> bool:
    changes = {
        name: (getattr(subtask, name), getattr(legacy, name))
        for name in FIELDS
        if getattr(subtask, name) != getattr(legacy, name)
    }
    if not changes:
        return False
    now = timezone.now()
    values: dict[str, Any] = {name: new for name, (_, new) in changes.items()}
    values["updated_at"] = now  # update() skips auto_now
    if "status" in changes:
        values["status_changed_at"] = now
    Subtask.objects.filter(pk=subtask.pk).update(**values)
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.IMPORT,
        message=f"{legacy.key} updated from YAML: {', '.join(changes)}",
        actor=actor,
        subtask=subtask,
        data={
            "source": SOURCE_IMPORT,
            "action": "updated",
            "changes": {
                name: {"from": _json(old), "to": _json(new)} for name, (old, new) in changes.items()
            },
        },
    )
    return True


def _sync_dependencies(
    tree: LegacyTree, subtasks: dict[str, Subtask], summary: ImportSummary, actor: str
) -> None:
    """Make each listed subtask depend on exactly its depends_on list.

    Stale edges go first, so that a tree which reverses an edge never meets a transient
    cycle. The dependency service has no variant for a caller's transaction that removes
    an edge, so removal writes the same event as `dependency_remove` here.
    """
    wanted = {(legacy.key, key) for legacy in tree.subtasks for key in legacy.depends_on}
    present = set()
    edges = SubtaskDependency.objects.filter(subtask__in=list(subtasks.values())).select_related(
        "subtask", "depends_on"
    )
    for edge in edges.order_by("id"):
        pair = (edge.subtask.key, edge.depends_on.key)
        if pair in wanted:
            present.add(pair)
            continue
        apply_dependency_remove(edge, actor=actor)
        summary.dependencies_removed += 1
    for legacy in tree.subtasks:
        for key in legacy.depends_on:
            if (legacy.key, key) not in present:
                apply_dependency_add(subtasks[legacy.key], subtasks[key], actor=actor)
                summary.dependencies_added += 1


def _add_history(
    project: Project, tree: LegacyTree, subtasks: dict[str, Subtask], summary: ImportSummary
) -> None:
    stored = set(
        Event.objects.filter(
            project=project, kind=EventKind.IMPORT, data__source=SOURCE_HISTORY
        ).values_list("data__hash", flat=True)
    )
    for legacy in tree.subtasks:
        seen: dict[tuple, int] = {}
        for entry in legacy.history:
            identity = (entry.at, entry.actor, entry.message)
            seen[identity] = seen.get(identity, 0) + 1
            digest = history_hash(legacy.key, entry, seen[identity])
            if digest in stored:
                continue
            _record_history(subtasks[legacy.key], entry, digest)
            summary.history_added += 1


def _record_history(subtask: Subtask, entry: HistoryEntry, digest: str) -> None:
    # A legacy entry keeps its own time so the timeline shows it when it happened. The
    # columns are bounded, so the entry is also kept whole in data, which the exporter
    # writes back.
    event_record(
        workspace_id=subtask.workspace_id,
        subtask=subtask,
        kind=EventKind.IMPORT,
        actor=entry.actor,
        message=entry.message,
        created_at=entry.at,
        data={
            "source": SOURCE_HISTORY,
            "hash": digest,
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "message": entry.message,
        },
    )


@transaction.atomic(durable=True)
def tree_import(*, project: Project, tree: LegacyTree, actor: str = ACTOR) -> ImportSummary:
    """Create or update the tree's subtasks, dependencies and history in one transaction."""
    # The project lock serialises imports and graph edits; the row locks keep a concurrent
    # transition from landing between the comparison and the update.
    lock_project(project.pk)
    existing = {
        subtask.key: subtask
        for subtask in managed_subtasks(project).select_for_update(of=("self",))
    }
    summary = ImportSummary()
    subtasks: dict[str, Subtask] = {}
    for legacy in tree.subtasks:
        subtask = existing.get(legacy.key)
        if subtask is None:
            subtask = _create(project, legacy, actor)
            summary.created.append(legacy.key)
        elif _update(subtask, legacy, actor):
            summary.updated.append(legacy.key)
        else:
            summary.unchanged.append(legacy.key)
        subtasks[legacy.key] = subtask
    _sync_dependencies(tree, subtasks, summary, actor)
    _add_history(project, tree, subtasks, summary)
    if summary.changed:
        event_record(
            workspace_id=project.workspace_id,
            kind=EventKind.IMPORT,
            message=f"YAML import into {project.name}: {summary.describe()}",
            actor=actor,
            project=project,
            data={
                "source": SOURCE_IMPORT,
                "action": "summary",
                "created": summary.created,
                "updated": summary.updated,
                "dependencies_added": summary.dependencies_added,
                "dependencies_removed": summary.dependencies_removed,
                "history_added": summary.history_added,
            },
        )
    return summary
