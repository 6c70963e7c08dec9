from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts.models import Workspace


def default_policy() -> dict:
    return {"max_attempts": 3, "backoff_seconds": 30, "merge": "merge_commit"}


class Project(models.Model):
    """A git repository CodeMaestro works on, with its test command and policies."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60)
    repo_path = models.CharField(max_length=500, blank=True, help_text="Local git repository")
    repo_url = models.CharField(max_length=500, blank=True, help_text="Clone URL, if remote")
    default_branch = models.CharField(max_length=200, default="main")
    test_command = models.CharField(max_length=500, default="python -m pytest")
    policy = models.JSONField(default=default_policy, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="unique_project_slug"),
        ]

    def __str__(self) -> str:
        return self.name


class FeatureStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PLANNING = "planning", "Planning"
    PLANNED = "planned", "Planned"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class FeatureRequest(ConcurrentTransitionMixin, models.Model):
    """What a human asked for; Orion's planning run turns it into an FRD and subtasks."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="features")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="features")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    slug = models.SlugField(max_length=80)
    status = FSMField(
        default=FeatureStatus.DRAFT, choices=FeatureStatus.choices, protected=True, max_length=16
    )
    frd = models.TextField(blank=True, help_text="Requirements document written by Orion")
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="unique_feature_slug"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def branch(self) -> str:
        return f"feature/{self.slug}"

    @transition(field=status, source=FeatureStatus.DRAFT, target=FeatureStatus.PLANNING)
    def plan(self) -> None:
        pass

    @transition(field=status, source=FeatureStatus.PLANNING, target=FeatureStatus.PLANNED)
    def finish_planning(self) -> None:
        pass

    @transition(field=status, source=FeatureStatus.PLANNED, target=FeatureStatus.IN_PROGRESS)
    def begin(self) -> None:
        pass

    @transition(field=status, source=FeatureStatus.IN_PROGRESS, target=FeatureStatus.DONE)
    def finish(self) -> None:
        pass

    @transition(
        field=status,
        source=[
            FeatureStatus.DRAFT,
            FeatureStatus.PLANNING,
            FeatureStatus.PLANNED,
            FeatureStatus.IN_PROGRESS,
        ],
        target=FeatureStatus.CANCELLED,
    )
    def cancel(self) -> None:
        pass
