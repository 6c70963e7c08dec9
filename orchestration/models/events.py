from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone

from accounts.models import Workspace


class AppendOnlyError(Exception):
    """Events are history: once written they are never changed or removed."""


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("events are append-only: update is refused")

    def delete(self):
        raise AppendOnlyError("events are append-only: delete is refused")


class EventKind(models.TextChoices):
    SUBTASK_CREATED = "subtask.created", "Subtask created"
    SUBTASK_TRANSITION = "subtask.transition", "Subtask transition"
    SUBTASK_STAGE = "subtask.stage", "Subtask stage changed"
    DEPENDENCY_ADDED = "dependency.added", "Dependency added"
    DEPENDENCY_REMOVED = "dependency.removed", "Dependency removed"
    FEATURE_CREATED = "feature.created", "Feature requested"
    FEATURE_TRANSITION = "feature.transition", "Feature transition"
    PROJECT_CREATED = "project.created", "Project created"
    RUN_QUEUED = "run.queued", "Run queued"
    RUN_CLAIMED = "run.claimed", "Run claimed"
    RUN_SUCCEEDED = "run.succeeded", "Run succeeded"
    RUN_FAILED = "run.failed", "Run failed"
    RUN_LEASE_EXPIRED = "run.lease_expired", "Run lease expired"
    RUN_CANCELLED = "run.cancelled", "Run cancelled"
    RUN_DISPATCHED = "run.dispatched", "Run handed to a worker"
    TESTRUN_QUEUED = "testrun.queued", "Test run queued"
    TESTRUN_FINISHED = "testrun.finished", "Test run finished"
    TESTS_RED = "tests.red", "New tests are red"
    TESTS_NOT_RED = "tests.not_red", "New tests pass before implementation"
    FLAKY = "tests.flaky", "Flaky test detected"
    ESCALATED = "subtask.escalated", "Escalated to a human"
    PLAN_APPLIED = "feature.planned", "Plan applied"
    GIT = "git.commit", "Commit"
    BREAKER = "breaker", "Circuit breaker"
    HANDOFF_STOPPED = "handoff.stopped", "Handoff stopped for a human"
    IMPORT = "import.yaml", "YAML import"
    RUN_RELEASED = "run.released", "Run released by its agent"
    QUESTION_ASKED = "question.asked", "Question asked"
    QUESTION_ANSWERED = "question.answered", "Question answered"
    PROMPT_PROPOSED = "prompt.proposed", "Prompt change proposed"
    PROMPT_DECIDED = "prompt.decided", "Prompt change decided"
    REVIEW_REVISION = "review.revision", "Change set updated"
    REVIEW_COMMENT = "review.comment", "Review comment"
    REVIEW_APPROVAL = "review.approval", "Approval"
    REVIEW_MERGED = "review.merged", "Merged"
    REVIEW_MERGE_WAITING = "review.merge_waiting", "Merge waits"
    REVIEW_CONFLICT = "review.conflict", "Merge conflict"


class Event(models.Model):
    """Append-only record of everything that happens: timeline, search, metrics, audit."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="events")
    # RESTRICT keeps history from vanishing with one object, yet lets a whole workspace go.
    project = models.ForeignKey(
        "orchestration.Project", on_delete=models.RESTRICT, null=True, blank=True, related_name="+"
    )
    feature = models.ForeignKey(
        "orchestration.FeatureRequest",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="events",
    )
    subtask = models.ForeignKey(
        "orchestration.Subtask",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="events",
    )
    run = models.ForeignKey(
        "orchestration.AgentRun",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="events",
    )
    kind = models.CharField(max_length=40, choices=EventKind.choices)
    actor = models.CharField(max_length=120, blank=True)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    # Filled at insert by services.events (events never change) on PostgreSQL; the activity
    # search matches it through a GIN index instead of parsing every row at query time.
    search_vector = SearchVectorField(null=True, blank=True, editable=False)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["workspace", "-id"], name="event_ws_recent"),
            models.Index(fields=["subtask", "-id"], name="event_subtask_recent"),
            models.Index(fields=["kind"], name="event_kind"),
            # Created on PostgreSQL only (see migration 0002): SQLite has no GIN.
            GinIndex(fields=["search_vector"], name="event_search"),
        ]

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError("events are append-only: an existing event cannot be saved")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("events are append-only: delete is refused")


class HandledEvent(models.Model):
    """Receipt that the workers ran an event's handoff: the outbox sweep re-sends the rest.

    Kept apart from Event so that events stay append-only.
    """

    event = models.OneToOneField(
        Event, on_delete=models.CASCADE, primary_key=True, related_name="handled"
    )
    handled_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"handled {self.event_id}"
