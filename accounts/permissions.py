"""The one access helper: who may see and do what in which workspace.

Views, the API, consumers and commands all ask here. Outsiders never learn that an object
exists (callers turn `None` scopes into 404); members without the right get 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db.models import QuerySet

from accounts.models import ApiToken, Membership, Role, Workspace


class Action(StrEnum):
    VIEW = "view"
    EDIT = "edit"  # create and move work: projects, features, subtasks, transitions
    REVIEW = "review"  # approve, request changes, complete
    ADMIN = "admin"  # members, tokens, policies
    WORK = "work"  # agents: claim, heartbeat, finish runs


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.ADMIN: frozenset({Action.VIEW, Action.EDIT, Action.REVIEW, Action.ADMIN, Action.WORK}),
    Role.AUTHOR: frozenset({Action.VIEW, Action.EDIT}),
    Role.REVIEWER: frozenset({Action.VIEW, Action.REVIEW}),
    Role.READER: frozenset({Action.VIEW}),
}
AGENT_ACTIONS = frozenset({Action.VIEW, Action.WORK})


@dataclass(frozen=True)
class Principal:
    """The caller: a signed-in user, or an agent token bound to one workspace and role."""

    user: object | None
    token: ApiToken | None = None

    @property
    def is_agent(self) -> bool:
        return self.token is not None and self.token.kind == ApiToken.Kind.AGENT

    @property
    def label(self) -> str:
        if self.is_agent:
            return f"agent:{self.token.name}"
        return f"user:{getattr(self.user, 'username', '?')}"


def principal_from_request(request) -> Principal:
    token = request.auth if isinstance(getattr(request, "auth", None), ApiToken) else None
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    return Principal(user=user, token=token)


def visible_workspaces(principal: Principal) -> QuerySet[Workspace]:
    if principal.is_agent:
        return Workspace.objects.filter(pk=principal.token.workspace_id)
    if principal.user is None:
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=principal.user)


def role_in(principal: Principal, workspace_id: int) -> str | None:
    if principal.is_agent:
        return "agent" if principal.token.workspace_id == workspace_id else None
    if principal.user is None:
        return None
    cache = _role_cache(principal)
    if workspace_id not in cache:
        cache[workspace_id] = (
            Membership.objects.filter(user=principal.user, workspace_id=workspace_id)
            .values_list("role", flat=True)
            .first()
        )
    return cache[workspace_id]


def _role_cache(principal: Principal) -> dict[int, str | None]:
    cache = getattr(principal.user, "_workspace_roles", None)
    if cache is None:
        cache = {}
        principal.user._workspace_roles = cache
    return cache


def can(principal: Principal, action: Action, workspace_id: int) -> bool:
    role = role_in(principal, workspace_id)
    if role is None:
        return False
    if role == "agent":
        return action in AGENT_ACTIONS
    return action in ROLE_ACTIONS[role]


def is_member(principal: Principal, workspace_id: int) -> bool:
    return role_in(principal, workspace_id) is not None
