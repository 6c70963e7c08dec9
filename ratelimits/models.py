"""API rate limits: what each workspace allows, and the SQL counters used when there is no Redis."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Workspace

MAX_PER_MINUTE = 1_000_000
_RANGE = [MinValueValidator(1), MaxValueValidator(MAX_PER_MINUTE)]


class WorkspaceRateLimit(models.Model):
    """A workspace's own limits; an empty value falls back to the installation's default."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, primary_key=True, related_name="rate_limit"
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=_RANGE,
        help_text="API requests per minute for the whole workspace (empty: the default).",
    )
    token_requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=_RANGE,
        help_text="API requests per minute for each token or signed-in user (empty: the default).",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"rate limits of {self.workspace}"


class RateCounter(models.Model):
    """One fixed window of one counter (embedded default: no Redis), bumped by one upsert."""

    key = models.CharField(max_length=200, primary_key=True)
    window_ends_ms = models.BigIntegerField()
    hits = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.hits}"
