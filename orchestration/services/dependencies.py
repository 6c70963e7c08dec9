"""Edges of the subtask DAG, refused when they would cross projects or close a cycle."""

from __future__ import annotations

from django.db import transaction

from orchestration.errors import DependencyRefused
from orchestration.lock_objects import lock_project
from orchestration.models import EventKind, Subtask, SubtaskDependency
from orchestration.services.events import event_record


def find_path(project_id: int, start_id: int, goal_id: int) -> list[int] | None:
    """Return the chain of subtask ids from start to goal along `depends_on` edges, if any."""
    edges: dict[int, list[int]] = {}
    pairs = SubtaskDependency.objects.filter(subtask__project_id=project_id).values_list(
        "subtask_id", "depends_on_id"
    )
    for source, target in pairs:
        edges.setdefault(source, []).append(target)
    parent: dict[int, int | None] = {start_id: None}
    stack = [start_id]
    while stack:
        node = stack.pop()
        if node == goal_id:
            path = [node]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            return list(reversed(path))
        for nxt in edges.get(node, ()):
            if nxt not in parent:
                parent[nxt] = node
                stack.append(nxt)
    return None


def validate_dependency(subtask: Subtask, depends_on: Subtask) -> None:
    if subtask.pk == depends_on.pk:
        raise DependencyRefused(f"{subtask.key} cannot depend on itself")
    if subtask.project_id != depends_on.project_id:
        raise DependencyRefused(
            f"{subtask.key} and {depends_on.key} belong to different projects; "
            "dependencies stay inside one project"
        )
    cycle = find_path(subtask.project_id, depends_on.pk, subtask.pk)
    if cycle is not None:
        keys = dict(Subtask.objects.filter(pk__in=cycle).values_list("pk", "key"))
        chain = " → ".join(keys[pk] for pk in [subtask.pk, *cycle])
        raise DependencyRefused(f"this dependency would close a cycle: {chain}", cycle=chain)


def apply_dependency_add(subtask: Subtask, depends_on: Subtask, *, actor: str) -> SubtaskDependency:
    """Add an edge inside the caller's transaction, with the project's graph locked."""
    lock_project(subtask.project_id)
    validate_dependency(subtask, depends_on)
    edge, created = SubtaskDependency.objects.get_or_create(subtask=subtask, depends_on=depends_on)
    if created:
        event_record(
            workspace_id=subtask.workspace_id,
            kind=EventKind.DEPENDENCY_ADDED,
            message=f"{subtask.key} now depends on {depends_on.key}",
            actor=actor,
            subtask=subtask,
            data={"depends_on": str(depends_on.code)},
        )
    return edge


@transaction.atomic(durable=True)
def dependency_add(*, subtask: Subtask, depends_on: Subtask, actor: str) -> SubtaskDependency:
    return apply_dependency_add(subtask, depends_on, actor=actor)


@transaction.atomic(durable=True)
def dependency_remove(*, edge: SubtaskDependency, actor: str) -> None:
    apply_dependency_remove(edge, actor=actor)


def apply_dependency_remove(edge: SubtaskDependency, *, actor: str) -> None:
    """Remove an edge inside the caller's transaction, with an Event."""
    subtask = edge.subtask
    depends_on_key = edge.depends_on.key
    edge.delete()
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.DEPENDENCY_REMOVED,
        message=f"{subtask.key} no longer depends on {depends_on_key}",
        actor=actor,
        subtask=subtask,
    )
