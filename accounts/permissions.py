"""The one access helper: who may see and do what in which workspace and project.

Views, the API, consumers, the MCP server, admin and commands all ask here. Outsiders
never learn that an object exists (callers turn `None` scopes into 404); members without
the right get 403.

Roles are stored as django-guardian object permissions (one per `Action`) on the
workspace, and, for a member whose role differs on one project, on that project
(`ProjectRole` keeps the override, `accounts.services` writes the permission rows). A
member's permissions for a workspace and all its projects load in one query and are
cached on the user object for the request, so checking every row of a list costs nothing
more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from django.db.models import IntegerField, Model, QuerySet, Value
from guardian.shortcuts import get_objects_for_user

from accounts.models import (
    ApiToken,
    ProjectUserObjectPermission,
    Role,
    Workspace,
    WorkspaceUserObjectPermission,
)


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
_ROLE_OF_ACTIONS = {actions: role for role, actions in ROLE_ACTIONS.items()}
_ACTION_OF_PREFIX = {action.value: action for action in Action}


def codename(action: Action | str, model_name: str) -> str:
    """The guardian permission codename of an action on a model: `edit_project`."""
    return f"{Action(action).value}_{model_name}"


@dataclass(frozen=True)
class Principal:
    """The caller: a signed-in user, or an agent token bound to one workspace and role."""

    user: object | None
    token: ApiToken | None = None

    @property
    def is_agent(self) -> bool:
        return self.token is not None and self.token.kind == ApiToken.Kind.AGENT

    @property
    def project_limit(self) -> int | None:
        """The one project an agent token is limited to, if any."""
        return self.token.project_id if self.is_agent else None

    @property
    def label(self) -> str:
        if self.is_agent:
            return f"agent:{self.token.name}"
        return f"user:{getattr(self.user, 'username', '?')}"


def principal_from_request(request) -> Principal:
    token = request.auth if isinstance(getattr(request, "auth", None), ApiToken) else None
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    return Principal(user=user, token=token)


@dataclass(frozen=True)
class Access:
    """What one caller may do in one workspace: its workspace role and project overrides."""

    actions: frozenset[Action]
    projects: dict[int, frozenset[Action]] = field(default_factory=dict)

    def actions_on(self, project_id: int | None = None) -> frozenset[Action]:
        if project_id is None:
            return self.actions
        return self.projects.get(project_id, self.actions)

    def role_on(self, project_id: int | None = None) -> str:
        return _ROLE_OF_ACTIONS.get(self.actions_on(project_id), "custom")


# --- visibility (querysets: outsiders see nothing, callers answer 404) ---------------------


def visible_workspaces(principal: Principal) -> QuerySet[Workspace]:
    if principal.is_agent:
        return Workspace.objects.filter(pk=principal.token.workspace_id)
    if principal.user is None:
        return Workspace.objects.none()
    # Guardian builds `pk IN (SELECT content_object_id FROM <direct table> ...)`: a
    # subquery, never a list of ids, whatever the number of workspaces.
    return get_objects_for_user(
        principal.user,
        codename(Action.VIEW, "workspace"),
        klass=Workspace,
        use_groups=False,
        with_superuser=False,
        accept_global_perms=False,
    )


def scope(principal: Principal, queryset: QuerySet) -> QuerySet:
    """`queryset` limited to what the caller may see: its workspaces, and for an agent token
    limited to one project, that project (for models that belong to a project)."""
    model = queryset.model
    if model is Workspace:
        queryset = queryset.filter(pk__in=visible_workspaces(principal).values("pk"))
    else:
        queryset = queryset.filter(workspace__in=visible_workspaces(principal).values("pk"))
    limit = principal.project_limit
    if limit is not None:
        if model._meta.model_name == "project" and model._meta.app_label == "orchestration":
            queryset = queryset.filter(pk=limit)
        elif _has_field(model, "project"):
            queryset = queryset.filter(project_id=limit)
    return queryset


def _has_field(model: type[Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except Exception:
        return False
    return True


# --- checks ------------------------------------------------------------------------------


def access_in(principal: Principal, workspace_id: int) -> Access | None:
    """The caller's access in a workspace, or None if it is not a member (→ 404)."""
    if principal.is_agent:
        return Access(AGENT_ACTIONS) if principal.token.workspace_id == workspace_id else None
    if principal.user is None or not getattr(principal.user, "pk", None):
        return None
    cache = _access_cache(principal.user)
    if workspace_id not in cache:
        cache[workspace_id] = _load_access(principal.user.pk, workspace_id)
    return cache[workspace_id]


def _load_access(user_id: int, workspace_id: int) -> Access | None:
    # One query for the workspace's permissions and every project override in it.
    on_workspace = (
        WorkspaceUserObjectPermission.objects.filter(
            user_id=user_id, content_object_id=workspace_id
        )
        .annotate(project=Value(None, output_field=IntegerField()))
        .values_list("project", "permission__codename")
    )
    on_projects = ProjectUserObjectPermission.objects.filter(
        user_id=user_id, content_object__workspace_id=workspace_id
    ).values_list("content_object_id", "permission__codename")
    workspace_actions: set[Action] = set()
    project_actions: dict[int, set[Action]] = {}
    for project_id, name in on_workspace.union(on_projects, all=True):
        action = _ACTION_OF_PREFIX.get(name.split("_", 1)[0])
        if action is None:
            continue
        if project_id is None:
            workspace_actions.add(action)
        else:
            project_actions.setdefault(project_id, set()).add(action)
    if Action.VIEW not in workspace_actions:
        return None  # project overrides alone never make someone a member
    return Access(
        frozenset(workspace_actions),
        {pid: frozenset(actions) for pid, actions in project_actions.items()},
    )


def _access_cache(user) -> dict[int, Access | None]:
    cache = getattr(user, "_workspace_access", None)
    if cache is None:
        cache = {}
        user._workspace_access = cache
    return cache


def forget(user) -> None:
    """Drop the cached access of `user` (after its roles changed within one request)."""
    if user is not None and hasattr(user, "_workspace_access"):
        del user._workspace_access


def _locate(target, project) -> tuple[int, int | None]:
    """(workspace id, project id) of what a check is about.

    `target` is a workspace id (the historical signature), or any object: a workspace, a
    project, or anything with `workspace_id` (and `project_id` when it belongs to one).
    """
    if isinstance(target, Model):
        meta = target._meta
        if isinstance(target, Workspace):
            workspace_id, project_id = target.pk, None
        elif meta.app_label == "orchestration" and meta.model_name == "project":
            workspace_id, project_id = target.workspace_id, target.pk
        else:
            workspace_id = target.workspace_id
            project_id = getattr(target, "project_id", None)
    else:
        workspace_id, project_id = int(target), None
    if project is not None:
        project_id = project.pk if isinstance(project, Model) else int(project)
    return workspace_id, project_id


def can(principal: Principal, action: Action, target, project=None) -> bool:
    """May the caller take `action` on `target` (a workspace id or an object)?

    A project override applies when the object belongs to a project, or when `project`
    (a Project or its id) is given.
    """
    workspace_id, project_id = _locate(target, project)
    access = access_in(principal, workspace_id)
    if access is None:
        return False
    limit = principal.project_limit
    if limit is not None and project_id is not None and project_id != limit:
        return False
    return Action(action) in access.actions_on(project_id)


def role_in(principal: Principal, workspace_id: int, project=None) -> str | None:
    """The caller's role name in a workspace (or on one project of it); None if outside."""
    access = access_in(principal, workspace_id)
    if access is None:
        return None
    if principal.is_agent:
        return "agent"
    return access.role_on(_locate(workspace_id, project)[1])


def is_member(principal: Principal, workspace_id: int) -> bool:
    return access_in(principal, workspace_id) is not None


def workspaces_where(principal: Principal, action: Action) -> QuerySet[Workspace]:
    """The workspaces where the caller may take `action` on the workspace as a whole."""
    if principal.is_agent:
        if action in AGENT_ACTIONS:
            return Workspace.objects.filter(pk=principal.token.workspace_id)
        return Workspace.objects.none()
    if principal.user is None:
        return Workspace.objects.none()
    return get_objects_for_user(
        principal.user,
        codename(action, "workspace"),
        klass=Workspace,
        use_groups=False,
        with_superuser=False,
        accept_global_perms=False,
    )
