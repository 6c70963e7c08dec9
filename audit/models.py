"""The audit log: append-only, hash-chained entries, one chain per workspace (plus a global one).

Every entry stores its place in its chain (`seq`), the previous entry's hash and its own
hash over a canonical serialisation of its fields (see `audit.chain`). A chain head row per
chain records the last seq and hash, so a deleted or added tail is noticed too.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Workspace


class AppendOnlyError(Exception):
    """Audit entries are evidence: once written they are never changed or removed."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("the audit log is append-only: update is refused")

    def delete(self):
        raise AppendOnlyError("the audit log is append-only: delete is refused")


class AuditEntry(models.Model):
    """One security-relevant action: who did what to which target, in which workspace."""

    # No database constraint and no cascade: the log outlives a deleted workspace, and a
    # cascade (or SET_NULL) would silently rewrite history.
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "seq"],
                condition=models.Q(workspace__isnull=False),
                name="audit_unique_workspace_seq",
            ),
            models.UniqueConstraint(
                fields=["seq"],
                condition=models.Q(workspace__isnull=True),
                name="audit_unique_global_seq",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="audit_ws_created"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor} #{self.seq}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError("the audit log is append-only: an entry cannot be saved again")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("the audit log is append-only: delete is refused")


class AuditChainHead(models.Model):
    """The last seq and hash of one chain; its row lock serialises that chain's writers.

    `chain` is the workspace id, or 0 for the global chain (logins and other events that
    belong to no workspace).
    """

    chain = models.PositiveBigIntegerField(primary_key=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"chain {self.chain} at #{self.last_seq}"
