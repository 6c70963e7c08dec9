from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from accounts.models import Workspace
from orchestration.models.agents import AgentProfile, AgentRun
from orchestration.models.subtasks import Subtask


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"


class PromptProposal(models.Model):
    """A prompt engineer's proposed change to a profile's prompt template.

    Nothing changes until a workspace admin applies it; applying bumps the profile's prompt
    version, and a proposal made against an older version is refused.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="prompt_proposals"
    )
    profile = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="proposals")
    run = models.OneToOneField(
        AgentRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="proposal"
    )
    subtask = models.ForeignKey(
        Subtask, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    base_version = models.PositiveIntegerField()
    proposed_template = models.TextField()
    rationale = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.PENDING
    )
    decided_by = models.CharField(max_length=120, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"prompt proposal for {self.profile.name} ({self.status})"
