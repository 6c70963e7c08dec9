"""Review: a change set per feature branch, its revisions, inline comments and approvals.

State fields are django-fsm (protected); transition bodies only set fields on self, and the
services in review/services/ lock, save, record the Event and cause the side effects.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts.models import Workspace
from orchestration.models import AgentRun, FeatureRequest, Project, Risk, Subtask


class ChangeSetStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONFLICTED = "conflicted", "Conflicted"
    MERGED = "merged", "Merged"


class ChangeSet(ConcurrentTransitionMixin, models.Model):
    """The diff of one feature branch against its base, reviewed and merged as a whole."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="changesets")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="changesets")
    feature = models.OneToOneField(
        FeatureRequest, on_delete=models.CASCADE, related_name="changeset"
    )
    branch = models.CharField(max_length=200)
    base_branch = models.CharField(max_length=200)
    base_sha = models.CharField(max_length=40, blank=True, help_text="Merge base of the head")
    head_sha = models.CharField(max_length=40, blank=True)
    status = FSMField(
        default=ChangeSetStatus.OPEN,
        choices=ChangeSetStatus.choices,
        protected=True,
        max_length=12,
    )
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.LOW)
    # [{"tier": "high", "reason": "touches a migration: app/migrations/0002.py"}, ...]
    risk_reasons = models.JSONField(default=list, blank=True)
    conflict_files = models.JSONField(default=list, blank=True)
    merge_note = models.TextField(blank=True, help_text="Why the last merge attempt waited")
    merged_sha = models.CharField(max_length=40, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    # Bumped (F() + 1) on every comment change: ETags of fragments and the live poll use it.
    comments_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "status"], name="changeset_ws_status")]

    def __str__(self) -> str:
        return f"{self.branch} ({self.status})"

    @transition(field=status, source=ChangeSetStatus.OPEN, target=ChangeSetStatus.CONFLICTED)
    def mark_conflicted(self) -> None:
        pass

    @transition(field=status, source=ChangeSetStatus.CONFLICTED, target=ChangeSetStatus.OPEN)
    def reopen(self) -> None:
        self.conflict_files = []

    @transition(field=status, source=ChangeSetStatus.OPEN, target=ChangeSetStatus.MERGED)
    def mark_merged(self) -> None:
        self.merged_at = timezone.now()
        self.merge_note = ""


class Revision(models.Model):
    """One push of the branch: its base and head, who pushed it, and its per-file stats."""

    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    base_sha = models.CharField(max_length=40)
    head_sha = models.CharField(max_length=40)
    # [{"path", "old_path", "status", "additions", "deletions", "binary", "old_mode",
    #   "new_mode"}] in git's order: the file tree renders from this, never from the diff.
    files = models.JSONField(default=list, blank=True)
    files_changed = models.PositiveIntegerField(default=0)
    additions = models.PositiveIntegerField(default=0)
    deletions = models.PositiveIntegerField(default=0)
    created_by_run = models.ForeignKey(
        AgentRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="revisions"
    )
    attempt = models.PositiveIntegerField(null=True, blank=True)
    pushed_by = models.CharField(max_length=200, blank=True)
    pushed_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person whose commit is the head, when it is a member's",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["changeset", "number"]
        constraints = [
            models.UniqueConstraint(fields=["changeset", "number"], name="unique_revision_number"),
        ]

    def __str__(self) -> str:
        return f"revision {self.number} ({self.head_sha[:8]})"

    @property
    def is_agent_push(self) -> bool:
        return self.created_by_run_id is not None


class Side(models.TextChoices):
    OLD = "old", "Old (left)"
    NEW = "new", "New (right)"


class CommentState(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    DROPPED = "dropped", "Dropped"


class ReviewComment(ConcurrentTransitionMixin, models.Model):
    """An inline comment anchored to (revision, path, side, first line, line count).

    Replies point at their thread's root through `parent` and share its anchor; the root's
    state is the thread's state. Where the thread shows on later revisions is kept in
    CommentPlacement rows.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="comments")
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="comments")
    path = models.CharField(max_length=1000)
    side = models.CharField(max_length=3, choices=Side.choices, default=Side.NEW)
    first_line = models.PositiveIntegerField()
    line_count = models.PositiveIntegerField(default=1)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies"
    )
    state = FSMField(
        default=CommentState.OPEN, choices=CommentState.choices, protected=True, max_length=10
    )
    body = models.TextField(help_text="Markdown; rendered sanitised, raw HTML is not allowed")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="review_comments",
    )
    author_label = models.CharField(max_length=120)
    # The developer run (attempt) whose push answered this comment, from its briefing.
    addressed_by_run = models.ForeignKey(
        AgentRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    addressed_attempt = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["changeset", "state"], name="comment_cs_state")]
        constraints = [
            models.CheckConstraint(
                name="comment_lines_positive",
                condition=models.Q(first_line__gte=1, line_count__gte=1),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.path}:{self.side}{self.first_line} ({self.state})"

    @property
    def last_line(self) -> int:
        return self.first_line + self.line_count - 1

    @transition(field=state, source=CommentState.OPEN, target=CommentState.RESOLVED)
    def resolve(self) -> None:
        pass

    @transition(field=state, source=CommentState.OPEN, target=CommentState.DROPPED)
    def drop(self) -> None:
        pass

    @transition(
        field=state,
        source=[CommentState.RESOLVED, CommentState.DROPPED],
        target=CommentState.OPEN,
    )
    def reopen(self) -> None:
        pass


class CommentPlacement(models.Model):
    """Where a thread shows on one revision; no row for a revision means outdated there."""

    comment = models.ForeignKey(ReviewComment, on_delete=models.CASCADE, related_name="placements")
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="placements")
    path = models.CharField(max_length=1000)
    side = models.CharField(max_length=3, choices=Side.choices)
    first_line = models.PositiveIntegerField()
    line_count = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comment", "revision"], name="unique_placement"),
        ]
        indexes = [models.Index(fields=["revision", "path"], name="placement_rev_path")]

    def __str__(self) -> str:
        return f"{self.comment_id} @ r{self.revision_id} {self.path}:{self.first_line}"

    @property
    def last_line(self) -> int:
        return self.first_line + self.line_count - 1


class ApprovalKind(models.TextChoices):
    PLAN = "plan", "Plan (before the developer acts)"
    MERGE = "merge", "Merge"


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    DISMISSED = "dismissed", "Dismissed"


class Approval(ConcurrentTransitionMixin, models.Model):
    """A gate a person (or, for low risk, the policy) must open.

    A merge approval belongs to one revision of a change set: it holds for that head only,
    and a newer push dismisses it. A plan approval belongs to one high-risk subtask and
    must be approved before the developer agent gets its run.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="approvals")
    feature = models.ForeignKey(FeatureRequest, on_delete=models.CASCADE, related_name="approvals")
    changeset = models.ForeignKey(
        ChangeSet, on_delete=models.CASCADE, null=True, blank=True, related_name="approvals"
    )
    revision = models.ForeignKey(
        Revision, on_delete=models.CASCADE, null=True, blank=True, related_name="approvals"
    )
    subtask = models.ForeignKey(
        Subtask, on_delete=models.CASCADE, null=True, blank=True, related_name="approvals"
    )
    kind = models.CharField(max_length=8, choices=ApprovalKind.choices)
    head_sha = models.CharField(max_length=40, blank=True)
    state = FSMField(
        default=ApprovalState.PENDING,
        choices=ApprovalState.choices,
        protected=True,
        max_length=20,
    )
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.LOW)
    auto = models.BooleanField(default=False, help_text="Approved by the low-risk policy")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_by_label = models.CharField(max_length=120, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["revision"],
                condition=models.Q(kind="merge"),
                name="one_merge_gate_per_revision",
            ),
            models.UniqueConstraint(
                fields=["subtask"],
                condition=models.Q(kind="plan", state__in=["pending", "approved"]),
                name="one_live_plan_gate_per_subtask",
            ),
            # Only the low-risk policy approves without a person; nobody else ever does.
            models.CheckConstraint(
                name="approved_by_someone",
                condition=~models.Q(state="approved", auto=False, decided_by__isnull=True),
            ),
        ]
        indexes = [models.Index(fields=["workspace", "state"], name="approval_ws_state")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} approval ({self.state})"

    def _decide(self, user, label: str, note: str) -> None:
        self.decided_by = user
        self.decided_by_label = label
        self.decided_at = timezone.now()
        self.note = note

    @transition(field=state, source=ApprovalState.PENDING, target=ApprovalState.APPROVED)
    def approve(self, user, label: str, note: str = "") -> None:
        self._decide(user, label, note)

    @transition(field=state, source=ApprovalState.PENDING, target=ApprovalState.CHANGES_REQUESTED)
    def request_changes(self, user, label: str, note: str = "") -> None:
        self._decide(user, label, note)

    @transition(
        field=state,
        source=[ApprovalState.PENDING, ApprovalState.APPROVED],
        target=ApprovalState.DISMISSED,
    )
    def dismiss(self, note: str = "") -> None:
        self.note = note
