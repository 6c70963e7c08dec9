from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from accounts.models import Workspace
from orchestration.models.agents import AgentRun
from orchestration.models.projects import FeatureRequest, Project
from orchestration.models.subtasks import Subtask


class TestRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"


class TestRunPurpose(models.TextChoices):
    RED_CHECK = "red_check", "Red check of new tests"
    VERIFY = "verify", "Verify implementation"


class TestRun(models.Model):
    """One execution of a project's test command on one commit, with every case's result."""

    __test__ = False  # not a pytest test class despite the name

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="test_runs")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="test_runs")
    feature = models.ForeignKey(
        FeatureRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="test_runs"
    )
    subtask = models.ForeignKey(
        Subtask, on_delete=models.CASCADE, null=True, blank=True, related_name="test_runs"
    )
    agent_run = models.ForeignKey(
        AgentRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="test_runs"
    )
    purpose = models.CharField(max_length=12, choices=TestRunPurpose.choices)
    status = models.CharField(
        max_length=10, choices=TestRunStatus.choices, default=TestRunStatus.QUEUED
    )
    branch = models.CharField(max_length=200, blank=True)
    commit_sha = models.CharField(max_length=40, blank=True)
    base_sha = models.CharField(max_length=40, blank=True)
    # The handoff event that asked for this run; unique so a redelivered task adds nothing.
    cause_event_id = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True)
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    flaky = models.PositiveIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    timed_out = models.BooleanField(default=False)
    duration_seconds = models.FloatField(null=True, blank=True)
    coverage_percent = models.FloatField(null=True, blank=True)
    problem = models.TextField(blank=True)
    output = models.TextField(blank=True)
    failure_context = models.TextField(
        blank=True, help_text="Failing tests, messages and output tail: a retry's briefing"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subtask", "-created_at"], name="testrun_subtask_recent")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {self.commit_sha[:8]} ({self.status})"


class CaseOutcome(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    SKIPPED = "skipped", "Skipped"


class TestCaseResult(models.Model):
    __test__ = False

    test_run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="cases")
    name = models.CharField(max_length=500)
    classname = models.CharField(max_length=500, blank=True)
    file = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=8, choices=CaseOutcome.choices)
    duration_seconds = models.FloatField(default=0)
    message = models.TextField(blank=True)
    details = models.TextField(blank=True)
    flaky = models.BooleanField(default=False, help_text="Failed, then passed on a re-run")

    class Meta:
        ordering = ["test_run", "classname", "name"]
        indexes = [models.Index(fields=["name"], name="testcase_name")]

    def __str__(self) -> str:
        return f"{self.classname}::{self.name} {self.outcome}"

    @property
    def node(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


class CoverageFile(models.Model):
    test_run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="coverage_files")
    path = models.CharField(max_length=500)
    lines_valid = models.PositiveIntegerField(default=0)
    lines_covered = models.PositiveIntegerField(default=0)
    line_rate = models.FloatField(default=0)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return f"{self.path} {self.line_rate:.0%}"


class FlakyTest(models.Model):
    """A test seen failing and then passing on the same commit: not the agent's fault."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flaky_tests")
    classname = models.CharField(max_length=500, blank=True)
    name = models.CharField(max_length=500)
    flake_count = models.PositiveIntegerField(default=1)
    last_commit = models.CharField(max_length=40, blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "classname", "name"], name="unique_flaky_test"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.classname}::{self.name} (flaky x{self.flake_count})"
