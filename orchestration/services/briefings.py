"""The text an agent run starts from: role, request, requirements, and what went wrong before.

Built when the run is queued and stored on it, so what the agent saw is part of the record.
"""

from __future__ import annotations

from accounts.scrubbing import remember_workspace, scrub
from orchestration import extensions
from orchestration.models import AgentRun, FeatureRequest, RunStatus, Subtask, TestRun

ROLE_INTRO = {
    "pm": "You are Orion, the product manager. Turn the request into an FRD and a manifest of "
    "subtasks with requirements for the developer and the tester, dependencies and risk.",
    "tester": "You are Tara, the tester. Write tests for the requirement below, and only tests: "
    "they must fail until the behaviour exists.",
    "developer": "You are Devon, the developer. Make the failing tests pass without weakening "
    "them, with the smallest clean change.",
    "devops": "You are the DevOps agent. Change Dockerfiles, CI and deployment configuration "
    "only as the requirement asks; every change you make is reviewed as high risk.",
    "qa": "You are QA/Breaker. Attack the implementation: add adversarial tests for edge cases, "
    "bad input and abuse that the existing tests miss. Add tests only, never fix the code.",
    "prompt": "You are the prompt engineer. Read how an agent failed and propose a better "
    "prompt template for it; a human decides whether to apply it.",
    "product": "You are the product manager. Sharpen this subtask's requirements for the "
    "developer and the tester and define its acceptance criteria, as JSON: "
    '{"requirements": {"developer": str, "tester": str}, "acceptance_criteria": [str]}.',
}
TESTER_ROLES = frozenset({"tester", "qa"})


def briefing_for(
    *,
    role: str,
    step: str,
    feature: FeatureRequest | None,
    subtask: Subtask | None,
    note: str = "",
) -> str:
    parts = [f"# Briefing: {step} ({role})", ROLE_INTRO.get(role, "")]
    if feature is not None:
        parts.append(f"## Feature request\n{feature.title}\n\n{feature.description}".rstrip())
        if feature.frd and step != "plan":
            parts.append(f"## Requirements document\n{feature.frd}")
    if subtask is not None:
        parts.append(f"## Subtask {subtask.key}: {subtask.title}\n{subtask.description}".rstrip())
        wanted = (
            subtask.requirements_tester if role in TESTER_ROLES else subtask.requirements_developer
        )
        parts.append(f"## Requirements for you\n{wanted}")
        parts.extend(_history(subtask, role))
        review = extensions.review()
        if role == "developer" and subtask.feature_id and review is not None:
            parts.append(review.comments_for_briefing(subtask.feature_id))
    if feature is not None and step == "plan":
        parts.extend(_plan_history(feature))
    if note:
        parts.append(f"## Note from the orchestrator\n{note}")
    # The history quotes outputs, errors and comments: a secret value echoed into any of
    # them must not be handed to the next agent (or stored on its run).
    owner = subtask or feature
    if owner is not None:
        remember_workspace(owner.workspace_id)
    return scrub("\n\n".join(part for part in parts if part))


def _history(subtask: Subtask, role: str) -> list[str]:
    sections = []
    last_test = (
        TestRun.objects.filter(subtask=subtask).exclude(failure_context="").order_by("-id").first()
    )
    if role == "developer" and last_test is not None:
        sections.append(
            f"## Previous failure (test run {last_test.code})\n{last_test.failure_context}"
        )
    last_failed = (
        AgentRun.objects.filter(subtask=subtask, role=role, status=RunStatus.FAILED)
        .order_by("-id")
        .first()
    )
    if last_failed is not None:
        sections.append(f"## Your previous attempt failed\n{last_failed.error[:4000]}")
    return sections


def _plan_history(feature: FeatureRequest) -> list[str]:
    last_failed = (
        AgentRun.objects.filter(feature=feature, step="plan", status=RunStatus.FAILED)
        .order_by("-id")
        .first()
    )
    if last_failed is None:
        return []
    return [f"## Your previous plan was refused\n{last_failed.error[:4000]}"]
