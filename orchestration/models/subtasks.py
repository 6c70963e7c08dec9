from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts.models import AgentRole, Workspace
from orchestration.models.projects import FeatureRequest, Project


class SubtaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    TESTING = "testing", "Testing"
    READY_FOR_REVIEW = "ready_for_review", "Ready for review"
    COMPLETED = "completed", "Completed"
    BLOCKED = "blocked", "Blocked"
    FAILED = "failed", "Failed"
    RETRYING = "retrying", "Retrying"


class Stage(models.TextChoices):
    """Who holds an in-progress subtask: Tara writing tests, then Devon implementing."""

    TESTS = "tests", "Tests"
    IMPLEMENTATION = "implementation", "Implementation"


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


S = SubtaskStatus


class Subtask(ConcurrentTransitionMixin, models.Model):
    """The unit of work that moves through the lifecycle of DESIGN.md.

    Transition methods only set fields on self; services.transitions calls them inside a
    locked transaction, records the Event and schedules side effects.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="subtasks")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="subtasks")
    feature = models.ForeignKey(
        FeatureRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="subtasks"
    )
    key = models.CharField(max_length=60, help_text="Manifest id, unique in the project")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    requirements_developer = models.TextField(blank=True)
    requirements_tester = models.TextField(blank=True)
    owner_role = models.CharField(
        max_length=16, choices=AgentRole.choices, default=AgentRole.DEVELOPER
    )
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.LOW)
    status = FSMField(default=S.PENDING, choices=S.choices, protected=True, max_length=20)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.TESTS)
    attempts = models.PositiveIntegerField(default=0, help_text="Developer retries used")
    tester_attempts = models.PositiveIntegerField(default=0)
    infra_failures = models.PositiveIntegerField(default=0)
    assignee = models.ForeignKey(
        "orchestration.AgentProfile",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_subtasks",
        help_text="Profile that takes this subtask's runs instead of the role's default",
    )
    estimate_hours = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    blocked_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "key"]
        constraints = [
            # Keys come from a manifest: unique within their feature, or within the project
            # for subtasks outside any feature (imported from the legacy YAML).
            models.UniqueConstraint(
                fields=["project", "key"],
                condition=models.Q(feature__isnull=True),
                name="unique_subtask_key",
            ),
            models.UniqueConstraint(
                fields=["feature", "key"],
                condition=models.Q(feature__isnull=False),
                name="unique_feature_subtask_key",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "status"], name="subtask_ws_status"),
            # Each board column (a state, newest change first, capped) and the counts by
            # state are read from this index instead of sorting a workspace's subtasks.
            models.Index(
                fields=["workspace", "status", "-status_changed_at", "-id"],
                name="subtask_board_column",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.title}"

    def _touch(self) -> None:
        self.status_changed_at = timezone.now()

    @transition(field=status, source=S.PENDING, target=S.IN_PROGRESS)
    def start(self) -> None:
        self.stage = Stage.TESTS
        self._touch()

    @transition(field=status, source=S.IN_PROGRESS, target=S.TESTING)
    def submit(self) -> None:
        self._touch()

    @transition(field=status, source=S.TESTING, target=S.READY_FOR_REVIEW)
    def pass_tests(self) -> None:
        self._touch()

    @transition(field=status, source=S.TESTING, target=S.FAILED)
    def fail_tests(self) -> None:
        self._touch()

    @transition(field=status, source=S.FAILED, target=S.RETRYING)
    def retry(self) -> None:
        self.attempts += 1
        self._touch()

    @transition(field=status, source=S.RETRYING, target=S.TESTING)
    def retest(self) -> None:
        self._touch()

    @transition(field=status, source=S.FAILED, target=S.BLOCKED)
    def escalate(self) -> None:
        self._touch()

    @transition(field=status, source=[S.IN_PROGRESS, S.TESTING, S.RETRYING], target=S.BLOCKED)
    def block(self) -> None:
        self._touch()

    @transition(field=status, source=S.BLOCKED, target=S.IN_PROGRESS)
    def resume(self) -> None:
        # A person picked it up again: a fresh set of attempts from the stage it stopped at.
        self.blocked_reason = ""
        self.attempts = 0
        self.tester_attempts = 0
        self.infra_failures = 0
        self._touch()

    @transition(field=status, source=S.READY_FOR_REVIEW, target=S.IN_PROGRESS)
    def request_changes(self) -> None:
        self.stage = Stage.IMPLEMENTATION
        self._touch()

    @transition(field=status, source=S.READY_FOR_REVIEW, target=S.COMPLETED)
    def complete(self) -> None:
        self._touch()


# The lifecycle as data (name: sources, target): the transition matrix tests, the API's 409
# answers and the dashboard's buttons read it. A person or an agent can block work that is
# in progress, being tested or being retried; failed work is escalated instead.
SUBTASK_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": ((S.PENDING,), S.IN_PROGRESS),
    "submit": ((S.IN_PROGRESS,), S.TESTING),
    "pass_tests": ((S.TESTING,), S.READY_FOR_REVIEW),
    "fail_tests": ((S.TESTING,), S.FAILED),
    "retry": ((S.FAILED,), S.RETRYING),
    "retest": ((S.RETRYING,), S.TESTING),
    "escalate": ((S.FAILED,), S.BLOCKED),
    "block": ((S.IN_PROGRESS, S.TESTING, S.RETRYING), S.BLOCKED),
    "resume": ((S.BLOCKED,), S.IN_PROGRESS),
    "request_changes": ((S.READY_FOR_REVIEW,), S.IN_PROGRESS),
    "complete": ((S.READY_FOR_REVIEW,), S.COMPLETED),
}


def allowed_transitions(status: str) -> list[str]:
    return [name for name, (sources, _) in SUBTASK_TRANSITIONS.items() if status in sources]


class SubtaskDependency(models.Model):
    """An edge of the subtask DAG: `subtask` waits until `depends_on` is completed."""

    subtask = models.ForeignKey(Subtask, on_delete=models.CASCADE, related_name="dependency_links")
    depends_on = models.ForeignKey(
        Subtask, on_delete=models.CASCADE, related_name="dependent_links"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subtask", "depends_on"], name="unique_dependency"),
            models.CheckConstraint(
                name="dependency_not_self", condition=~models.Q(subtask=models.F("depends_on"))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subtask_id} → {self.depends_on_id}"
