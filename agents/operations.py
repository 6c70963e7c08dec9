"""The agents' capabilities, once: the REST API and the MCP tools both call these.

Each takes the caller (a Principal) and plain values, checks access through
`agents.access`, calls one service, and returns plain JSON-ready data.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from accounts.models import AgentRole
from accounts.permissions import Action, Principal
from agents import access, review, services
from agents.briefing import briefing_build
from agents.models import BriefingRecord, Question
from orchestration.errors import InvalidInput
from orchestration.models import AgentRun, RunStatus
from orchestration.services import runs

FAILURE_CLASSES = ("agent", "infrastructure", "flaky", "budget")


def run_data(run: AgentRun, *, lease: bool = False) -> dict[str, Any]:
    project = run.project
    data = {
        "id": str(run.code),
        "project": str(project.code),
        "feature": str(run.feature.code) if run.feature_id else None,
        "subtask": str(run.subtask.code) if run.subtask_id else None,
        "role": run.role,
        "step": run.step,
        "status": run.status,
        "attempt": run.attempt,
        "branch": services.run_branch(run),
        "default_branch": project.default_branch,
        "repo_path": project.repo_path,
        "repo_url": project.repo_url,
        "lease_expires_at": _iso(run.lease_expires_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
        "result": run.result,
    }
    if lease:
        data["lease_id"] = str(run.lease_id)
    return data


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _uuid(value: Any, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a UUID", field=field) from None


def runs_list(
    principal: Principal, *, role: str | None = None, workspace: str | None = None
) -> list[dict]:
    """Queued runs the caller could claim now, oldest first (at most 50)."""
    workspace_id, role = access.claim_scope(principal, role, workspace)
    queued = (
        AgentRun.objects.filter(workspace_id=workspace_id, role=role, status=RunStatus.QUEUED)
        .select_related("project", "feature", "subtask")
        .order_by("available_at", "id")[:50]
    )
    return [run_data(run) for run in queued]


def run_claim(
    principal: Principal,
    *,
    role: str | None = None,
    workspace: str | None = None,
    lease_seconds: int | None = None,
) -> dict | None:
    workspace_id, role = access.claim_scope(principal, role, workspace)
    claimer = runs.Claimer(name=principal.label, token_id=getattr(principal.token, "pk", None))
    run = runs.run_claim(
        workspace_id=workspace_id,
        role=role,
        claimer=claimer,
        lease_seconds=lease_seconds,
        project_id=principal.project_limit,
    )
    if run is None:
        return None
    # The claim brings only the codes of its project; the answer also needs its repository.
    run = AgentRun.objects.select_related("project", "feature", "subtask").get(pk=run.pk)
    return run_data(run, lease=True)


def run_heartbeat(
    principal: Principal, *, run_id: str, lease_id: str, lease_seconds: int | None = None
) -> dict:
    run = access.run_for(principal, run_id)
    run = runs.run_heartbeat(
        run=run, lease_id=_uuid(lease_id, "lease_id"), lease_seconds=lease_seconds
    )
    return run_data(run)


def run_release(principal: Principal, *, run_id: str, lease_id: str, reason: str = "") -> dict:
    run = access.run_for(principal, run_id)
    run = runs.run_release(
        run=run, lease_id=_uuid(lease_id, "lease_id"), actor=principal.label, reason=reason
    )
    return run_data(run)


def briefing_get(
    principal: Principal,
    *,
    subtask_id: str | None = None,
    run_id: str | None = None,
    role: str | None = None,
    budget: int | None = None,
) -> dict:
    """A subtask's briefing; given a run, the briefing for that run's role and subtask."""
    run = None
    if run_id:
        run = access.run_for(principal, run_id, action=Action.VIEW)
        if run.subtask is None:
            raise InvalidInput("a plan run has no subtask: its briefing is the run's own")
        subtask = access.subtask_for(principal, run.subtask.code)
    elif subtask_id:
        subtask = access.subtask_for(principal, subtask_id)
    else:
        raise InvalidInput("give a subtask id or a run id")
    access.require_briefing(principal, subtask)
    if principal.is_agent:
        role = principal.token.agent_role
    elif role is not None and role not in AgentRole.values:
        raise InvalidInput(f"role is one of {', '.join(AgentRole.values)}", field="role")
    if budget is not None and budget < 1:
        raise InvalidInput("budget must be a positive number of tokens", field="budget")
    built = briefing_build(
        subtask=subtask, requested_by=principal.label, run=run, role=role, budget=budget
    )
    return built.body


def patch_submit(principal: Principal, *, run_id: str, lease_id: str, patch: str) -> dict:
    run = access.run_for(principal, run_id)
    published = services.patch_submit(run=run, lease_id=_uuid(lease_id, "lease_id"), patch=patch)
    return {
        "commit": published.commit,
        "base": published.base,
        "branch": published.branch,
        "files": published.files,
    }


def result_report(
    principal: Principal,
    *,
    run_id: str,
    lease_id: str,
    success: bool,
    output: str = "",
    error: str = "",
    failure_class: str = "agent",
    result: dict | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Any = 0,
) -> dict:
    if failure_class not in FAILURE_CLASSES:
        raise InvalidInput(f"failure_class is one of {', '.join(FAILURE_CLASSES)}")
    if result is not None and not isinstance(result, dict):
        raise InvalidInput("result must be an object", field="result")
    if min(tokens_in, tokens_out) < 0:
        raise InvalidInput("token counts cannot be negative")
    run = access.run_for(principal, run_id)
    run = services.result_report(
        run=run,
        lease_id=_uuid(lease_id, "lease_id"),
        success=success,
        actor=principal.label,
        output=output,
        error=error,
        failure_class=failure_class,
        result=result,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=_cost(cost),
    )
    return run_data(run)


def _cost(value: Any) -> Decimal:
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput("cost must be a number", field="cost") from None
    if not cost.is_finite() or not 0 <= cost <= Decimal("999999.9999"):
        raise InvalidInput("cost must be between 0 and 999999.9999", field="cost")
    return cost


def question_data(question: Question) -> dict:
    return {
        "id": str(question.code),
        "subtask": str(question.subtask.code),
        "text": question.text,
        "asked_by": question.asked_by,
        "blocks_subtask": question.blocks_subtask,
        "status": "open" if question.is_open else "answered",
        "answer": question.answer,
        "answered_by": question.answered_by,
        "answered_at": _iso(question.answered_at),
        "created_at": _iso(question.created_at),
    }


def question_ask(
    principal: Principal,
    *,
    subtask_id: str,
    text: str,
    blocks_subtask: bool = False,
    run_id: str | None = None,
    lease_id: str | None = None,
) -> dict:
    subtask = access.subtask_for(principal, subtask_id)
    access.require_ask(principal, subtask)
    run = None
    if run_id:
        run = access.run_for(principal, run_id)
        # Only the run's holder may stop it by blocking the subtask.
        if run.status == RunStatus.RUNNING and str(run.lease_id) != str(lease_id or ""):
            raise InvalidInput("give the run's lease_id to ask on its behalf", field="lease_id")
    question = services.question_ask(
        subtask=subtask,
        text=text,
        asked_by=principal.label,
        blocks_subtask=blocks_subtask,
        run=run,
    )
    return question_data(question)


def questions_list(principal: Principal, *, subtask_id: str) -> list[dict]:
    subtask = access.subtask_for(principal, subtask_id)
    access.require_briefing(principal, subtask)
    return [question_data(q) for q in subtask.questions.select_related("subtask").order_by("id")]


def question_answer(principal: Principal, *, question_id: str, answer: str) -> dict:
    question = access.question_for(principal, question_id)
    access.require_answer(principal, question)
    question = services.question_answer(
        question=question, answer=answer, answered_by=principal.label
    )
    return question_data(question)


def review_comments(principal: Principal, *, subtask_id: str) -> list[dict]:
    subtask = access.subtask_for(principal, subtask_id)
    access.require_briefing(principal, subtask)
    return review.unresolved_comments(subtask)


def run_context(principal: Principal, *, run_id: str) -> dict:
    """The context budget and what each briefing of the run actually used."""
    run = access.run_for(principal, run_id, action=Action.VIEW)
    records = BriefingRecord.objects.filter(run=run).order_by("id")
    return {
        "run": str(run.code),
        "briefings": [
            {
                "tokens": r.tokens,
                "budget": r.budget,
                "trimmed": r.trimmed,
                "role": r.role,
                "requested_by": r.requested_by,
                "created_at": _iso(r.created_at),
            }
            for r in records
        ],
    }
