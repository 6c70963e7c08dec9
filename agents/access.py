"""Who may do what on the agents' side; shared by the REST API and the MCP server.

Everything goes through `accounts.permissions`: objects of another workspace are not
found (404), members without the right get 403. An agent token sees a subtask's briefing
only if its role works on that subtask.
"""

from __future__ import annotations

import uuid

from django.db.models import Model, QuerySet
from django.utils import timezone

from accounts.models import AgentRole, ApiToken, hash_token
from accounts.permissions import Action, Principal, can, scope, visible_workspaces
from agents.models import Question
from orchestration.errors import DomainError, InvalidInput, NotAllowed
from orchestration.models import AgentRun, Subtask

# Roles that work on every subtask by the lifecycle; the others only on subtasks they own
# or hold a run of.
LIFECYCLE_ROLES = frozenset({AgentRole.TESTER, AgentRole.DEVELOPER})
# Agents whose job is answering questions about requirements.
ANSWERING_ROLES = frozenset({AgentRole.PRODUCT, AgentRole.PM})


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


def principal_for_key(raw: str) -> Principal | None:
    """The principal of a raw API key, as the REST API would resolve it; None if invalid."""
    token = (
        ApiToken.objects.select_related("user", "workspace")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    if token.kind == ApiToken.Kind.USER:
        return Principal(user=token.user, token=token) if token.user.is_active else None
    return Principal(user=None, token=token)


def touch(principal: Principal) -> None:
    token = principal.token
    now = timezone.now()
    if token is not None and (
        token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


def scoped(principal: Principal, queryset: QuerySet) -> QuerySet:
    return scope(principal, queryset)


def get_scoped(principal: Principal, queryset: QuerySet, code: str | uuid.UUID) -> Model:
    try:
        code = uuid.UUID(str(code))
    except ValueError:
        raise NotFound("no such object") from None
    obj = scoped(principal, queryset).filter(code=code).first()
    if obj is None:
        raise NotFound(f"no {queryset.model._meta.verbose_name} with id {code}")
    return obj


def require(principal: Principal, action: Action, obj: Model) -> None:
    if not can(principal, action, obj):
        raise NotAllowed("your role in this workspace does not allow this")


def subtask_for(principal: Principal, code: str | uuid.UUID) -> Subtask:
    subtasks = Subtask.objects.select_related("project__workspace", "feature", "assignee")
    return get_scoped(principal, subtasks, code)


def run_for(
    principal: Principal, code: str | uuid.UUID, *, action: Action = Action.WORK
) -> AgentRun:
    runs = AgentRun.objects.select_related("project__workspace", "feature", "subtask", "profile")
    run = get_scoped(principal, runs, code)
    require(principal, action, run)
    return run


def question_for(principal: Principal, code: str | uuid.UUID) -> Question:
    return get_scoped(principal, Question.objects.select_related("subtask"), code)


def require_briefing(principal: Principal, subtask: Subtask) -> None:
    """Members may read any briefing of their workspace; an agent, if its role works here."""
    require(principal, Action.VIEW, subtask)
    if not principal.is_agent:
        return
    role = principal.token.agent_role
    if role in LIFECYCLE_ROLES or role == subtask.owner_role:
        return
    if not AgentRun.objects.filter(subtask=subtask, role=role).exists():
        raise NotAllowed(f"agents working as {role} have no work on this subtask")


def require_ask(principal: Principal, subtask: Subtask) -> None:
    if principal.is_agent:
        require_briefing(principal, subtask)
    else:
        require(principal, Action.EDIT, subtask)


def require_answer(principal: Principal, question: Question) -> None:
    if principal.is_agent:
        require(principal, Action.VIEW, question)
        if principal.token.agent_role not in ANSWERING_ROLES:
            raise NotAllowed("only people and the product manager's agents answer questions")
        return
    if not (
        can(principal, Action.EDIT, question.workspace_id)
        or can(principal, Action.REVIEW, question.workspace_id)
    ):
        raise NotAllowed("your role in this workspace does not allow answering questions")


def claim_scope(principal: Principal, role: str | None, workspace: str | None) -> tuple[int, str]:
    """The workspace and role a claim is for: an agent token's own, or the member's choice."""
    if principal.is_agent:
        token = principal.token
        if role and role != token.agent_role:
            raise NotAllowed(f"this token works as {token.agent_role}, not {role}")
        return token.workspace_id, token.agent_role
    if not role or not workspace:
        raise InvalidInput("a personal token names the workspace and the role to claim for")
    try:
        workspace_code = uuid.UUID(str(workspace))
    except ValueError:
        raise InvalidInput("workspace must be a UUID", field="workspace") from None
    if role not in AgentRole.values:
        raise InvalidInput(f"role is one of {', '.join(AgentRole.values)}", field="role")
    found = visible_workspaces(principal).filter(code=workspace_code).first()
    if found is None:
        raise NotFound(f"no workspace with id {workspace}")
    require(principal, Action.WORK, found)
    return found.pk, role
