from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from accounts.models import AgentRole, ApiToken, Workspace
from orchestration.models.projects import FeatureRequest, Project
from orchestration.models.subtasks import Subtask


class Executor(models.TextChoices):
    EXTERNAL = "external", "External (claims through the API)"
    COMMAND = "command", "Command line"
    LLM = "llm", "LLM API"
    DEMO = "demo", "Demo (built-in, deterministic)"


class BreakerState(models.TextChoices):
    CLOSED = "closed", "Closed (handing out work)"
    OPEN = "open", "Open (work waits)"
    HALF_OPEN = "half_open", "Half-open (one trial run)"


class AgentProfile(models.Model):
    """A role bound to an executor and a versioned prompt template, with its circuit breaker."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="agent_profiles"
    )
    name = models.CharField(max_length=80)
    role = models.CharField(max_length=16, choices=AgentRole.choices)
    executor = models.CharField(max_length=16, choices=Executor.choices, default=Executor.EXTERNAL)
    executor_config = models.JSONField(default=dict, blank=True)
    prompt_template = models.TextField(blank=True)
    prompt_version = models.PositiveIntegerField(default=1)
    granted_secrets = models.ManyToManyField(
        "accounts.Secret", blank=True, related_name="granted_to"
    )
    breaker_state = models.CharField(
        max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    breaker_opened_at = models.DateTimeField(null=True, blank=True)
    breaker_threshold = models.PositiveIntegerField(default=3)
    breaker_cooldown_seconds = models.PositiveIntegerField(default=300)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="unique_profile_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RunStep(models.TextChoices):
    PLAN = "plan", "Plan (FRD and subtasks)"
    TESTS = "tests", "Write tests"
    IMPLEMENTATION = "implementation", "Implement"
    REFINE = "refine", "Refine requirements"
    ADVERSARIAL = "adversarial", "Adversarial tests"
    PROMPT_REVIEW = "prompt_review", "Prompt review"


class AgentRun(models.Model):
    """One attempt by one agent at one step: claimable work with a lease and heartbeats.

    State moves only through conditional UPDATEs in services.runs (compare-and-swap on
    status and lease), so two agents can never hold the same run.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    feature = models.ForeignKey(
        FeatureRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="runs"
    )
    subtask = models.ForeignKey(
        Subtask, on_delete=models.CASCADE, null=True, blank=True, related_name="runs"
    )
    profile = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    role = models.CharField(max_length=16, choices=AgentRole.choices)
    step = models.CharField(max_length=16, choices=RunStep.choices)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    available_at = models.DateTimeField(default=timezone.now)
    lease_id = models.UUIDField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True)
    claimed_by_token = models.ForeignKey(
        ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    claim_count = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    briefing = models.TextField(blank=True)
    output = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    # The event whose handoff queued this run: unique, so a redelivered handoff task
    # can never queue the same run twice.
    cause_event_id = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The claim query: oldest runnable queued run for a workspace and role.
            models.Index(
                fields=["workspace", "role", "available_at", "id"],
                name="run_claim_queue",
                condition=models.Q(status="queued"),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="run_running_lease",
                condition=models.Q(status="running"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_step_display()} by {self.get_role_display()} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.claimed_at and self.finished_at:
            return (self.finished_at - self.claimed_at).total_seconds()
        return None
