"""Prompt proposals: the prompt engineer suggests, an admin decides, the profile changes."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import record_audit
from orchestration.errors import Conflict, InvalidInput
from orchestration.models import (
    AgentProfile,
    AgentRun,
    EventKind,
    PromptProposal,
    ProposalStatus,
    RunStep,
    Subtask,
)
from orchestration.services.briefings import briefing_for
from orchestration.services.events import event_record
from orchestration.services.work import apply_run_enqueue

ACTOR = "orchestrator"


def validate_proposal(result: dict[str, Any], workspace_id: int) -> AgentProfile:
    """A prompt review's result names a profile of the workspace and its new template."""
    problems = []
    name, template = result.get("profile"), result.get("prompt_template")
    if not isinstance(name, str) or not name:
        problems.append("profile: the name of the agent profile to change is required")
    if not isinstance(template, str) or not template.strip():
        problems.append("prompt_template: the proposed template must be non-empty text")
    if not isinstance(result.get("rationale", ""), str):
        problems.append("rationale: must be text")
    profile = None
    if not problems:
        profile = AgentProfile.objects.filter(workspace_id=workspace_id, name=name).first()
        if profile is None:
            problems.append(f"profile: no agent profile named {name!r} in this workspace")
    if problems:
        raise InvalidInput("invalid prompt proposal: " + "; ".join(problems), problems=problems)
    return profile


def queue_prompt_review(subtask: Subtask, cause: int) -> AgentRun | None:
    """After an escalation: ask the prompt engineer how the failing agent's prompt could help."""
    # The agent that held the subtask last (its runs may have "succeeded" while the tests
    # kept failing) is the one whose prompt is in question.
    last = (
        subtask.runs.exclude(profile=None)
        .exclude(step=RunStep.PROMPT_REVIEW)
        .select_related("profile")
        .order_by("-id")
        .first()
    )
    target = last.profile if last else None
    if target is None:
        return None
    note = (
        f"The agent profile {target.name!r} ({target.get_role_display()}) failed on this "
        f"subtask until it was escalated. Its prompt template (version {target.prompt_version})"
        f" is:\n\n{target.prompt_template or '(empty)'}\n\nPropose a better template as JSON: "
        '{"profile": name, "prompt_template": text, "rationale": text}.'
    )
    return apply_run_enqueue(
        project=subtask.project,
        subtask=subtask,
        role="prompt",
        step=RunStep.PROMPT_REVIEW,
        actor=ACTOR,
        cause_event_id=cause,
        briefing=briefing_for(
            role="prompt", step="prompt_review", feature=subtask.feature, subtask=subtask,
            note=note,
        ),
    )  # fmt: skip


def proposal_record(run: AgentRun) -> PromptProposal:
    """Store a succeeded prompt review as a pending proposal (caller's transaction)."""
    profile = validate_proposal(run.result, run.workspace_id)
    proposal, created = PromptProposal.objects.get_or_create(
        run=run,
        defaults={
            "workspace_id": run.workspace_id,
            "profile": profile,
            "subtask_id": run.subtask_id,
            "base_version": profile.prompt_version,
            "proposed_template": run.result["prompt_template"],
            "rationale": run.result.get("rationale", ""),
        },
    )
    if created:
        event_record(
            workspace_id=run.workspace_id,
            kind=EventKind.PROMPT_PROPOSED,
            message=f"prompt change proposed for {profile.name} (from v{profile.prompt_version})",
            actor=run.claimed_by or ACTOR,
            run=run,
            data={"proposal": str(proposal.code), "profile": profile.name},
        )
    return proposal


@transaction.atomic(durable=True)
def proposal_decide(*, proposal: PromptProposal, apply: bool, actor: str) -> PromptProposal:
    """Apply (the profile gets the template and a new version) or reject a pending proposal."""
    proposal = PromptProposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != ProposalStatus.PENDING:
        raise Conflict(f"the proposal is already {proposal.status}")
    profile = AgentProfile.objects.select_for_update().get(pk=proposal.profile_id)
    if apply:
        if profile.prompt_version != proposal.base_version:
            raise Conflict(
                f"{profile.name}'s prompt changed since (v{proposal.base_version} → "
                f"v{profile.prompt_version}); ask for a new proposal"
            )
        AgentProfile.objects.filter(pk=profile.pk).update(
            prompt_template=proposal.proposed_template, prompt_version=profile.prompt_version + 1
        )
        record_audit(
            workspace=proposal.workspace,
            actor=actor,
            action="policy.changed",
            target=f"agent_profile:{profile.name}",
            details={
                "proposal": str(proposal.code),
                "prompt_version": {
                    "from": profile.prompt_version,
                    "to": profile.prompt_version + 1,
                },
            },
        )
    proposal.status = ProposalStatus.APPLIED if apply else ProposalStatus.REJECTED
    proposal.decided_by, proposal.decided_at = actor[:120], timezone.now()
    proposal.save(update_fields=["status", "decided_by", "decided_at"])
    event_record(
        workspace_id=proposal.workspace_id,
        kind=EventKind.PROMPT_DECIDED,
        message=f"prompt change for {profile.name} {proposal.status} by {actor}",
        actor=actor,
        data={"proposal": str(proposal.code), "status": proposal.status},
    )
    return proposal
