"""Questions agents ask about their work, and the size of every briefing they were given."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from accounts.models import Workspace
from orchestration.models import AgentProfile, AgentRun, Subtask


class Question(models.Model):
    """An agent's question about a subtask; a person answers it in the dashboard or the API.

    A blocking question stops the subtask until it is answered; the answer appears in the
    next briefing of the subtask, whoever asks for it.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="questions")
    subtask = models.ForeignKey(Subtask, on_delete=models.CASCADE, related_name="questions")
    run = models.ForeignKey(
        AgentRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="questions"
    )
    asked_by = models.CharField(max_length=120)
    text = models.TextField()
    blocks_subtask = models.BooleanField(default=False)
    answer = models.TextField(blank=True)
    answered_by = models.CharField(max_length=120, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["subtask", "id"], name="question_subtask")]

    def __str__(self) -> str:
        return self.text[:80]

    @property
    def is_open(self) -> bool:
        return self.answered_at is None


class BriefingRecord(models.Model):
    """One briefing handed out: its size in tokens against the budget, and what was cut.

    Per run, these rows are the context actually used; the API and the admin show them.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="briefing_records"
    )
    subtask = models.ForeignKey(Subtask, on_delete=models.CASCADE, related_name="briefing_records")
    run = models.ForeignKey(
        AgentRun,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="briefing_records",
    )
    profile = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    role = models.CharField(max_length=16)
    requested_by = models.CharField(max_length=120)
    tokens = models.PositiveIntegerField()
    budget = models.PositiveIntegerField()
    # {section: number of items left out}; a text cut short counts as one.
    trimmed = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["run", "-id"], name="briefing_run"),
            models.Index(fields=["subtask", "-id"], name="briefing_subtask"),
        ]

    def __str__(self) -> str:
        return f"briefing of {self.tokens}/{self.budget} tokens"

    @property
    def over_budget(self) -> bool:
        return self.tokens > self.budget
