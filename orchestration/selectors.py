"""Reads of the orchestration domain, already scoped to what a principal may see."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import Workspace
from accounts.permissions import Principal, visible_workspaces
from orchestration.models import AgentRun, Event, Project, RunStatus, Subtask, SubtaskStatus


def workspaces_for(principal: Principal) -> QuerySet[Workspace]:
    return visible_workspaces(principal).order_by("name")


def status_counts(workspace: Workspace) -> dict[str, int]:
    rows = (
        Subtask.objects.filter(workspace=workspace)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = dict.fromkeys(SubtaskStatus.values, 0)
    counts.update(dict(rows))
    return counts


def projects_for(workspace: Workspace) -> QuerySet[Project]:
    return Project.objects.filter(workspace=workspace).annotate(
        subtask_count=Count("subtasks", distinct=True),
        feature_count=Count("features", distinct=True),
    )


def recent_events(workspace: Workspace, *, limit: int = 30) -> QuerySet[Event]:
    return (
        Event.objects.filter(workspace=workspace).select_related("subtask").order_by("-id")[:limit]
    )


def runs_in_flight(workspace: Workspace) -> QuerySet[AgentRun]:
    return (
        AgentRun.objects.filter(workspace=workspace, status=RunStatus.RUNNING)
        .select_related("subtask", "feature")
        .order_by("claimed_at")
    )


def waiting_for_humans(workspace: Workspace) -> QuerySet[Subtask]:
    return (
        Subtask.objects.filter(
            workspace=workspace,
            status__in=[SubtaskStatus.BLOCKED, SubtaskStatus.READY_FOR_REVIEW],
        )
        .select_related("project")
        .order_by("status_changed_at")
    )
