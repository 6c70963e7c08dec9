"""Reads for the access-control pages and API: bounded, a fixed number of queries each."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, Invite, Membership, ProjectRole, Workspace
from accounts.permissions import Principal, visible_workspaces

TOKEN_LIST_LIMIT = 200


def workspace_of(user, code) -> Workspace | None:
    """The workspace with this code if `user` is a member, else None (the 404)."""
    return visible_workspaces(Principal(user=user)).filter(code=code).first()


def members(workspace: Workspace) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(workspace=workspace)
        .select_related("user")
        .order_by("user__username")
    )


def project_roles(workspace: Workspace) -> QuerySet[ProjectRole]:
    return (
        ProjectRole.objects.filter(workspace=workspace)
        .select_related("user", "project")
        .order_by("project__name", "user__username")
    )


def pending_invites(workspace: Workspace) -> QuerySet[Invite]:
    return Invite.objects.filter(
        workspace=workspace,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).select_related("invited_by")


def agent_tokens(workspace: Workspace) -> QuerySet[ApiToken]:
    return (
        ApiToken.objects.filter(workspace=workspace, kind=ApiToken.Kind.AGENT)
        .select_related("project", "created_by")
        .order_by("revoked_at", "-created_at")
    )


def projects(workspace: Workspace):
    from orchestration.models import Project

    return Project.objects.filter(workspace=workspace).only("id", "code", "name", "workspace_id")


@dataclass
class AccessPage:
    members: list[Membership]
    overrides: list[ProjectRole]
    invites: list[Invite]
    tokens: list[ApiToken]
    projects: list


def access_page(workspace: Workspace) -> AccessPage:
    return AccessPage(
        members=list(members(workspace)),
        overrides=list(project_roles(workspace)),
        invites=list(pending_invites(workspace)),
        tokens=list(agent_tokens(workspace)[:TOKEN_LIST_LIMIT]),
        projects=list(projects(workspace)),
    )
