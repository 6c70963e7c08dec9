"""Reading and changing a workspace's API rate limits."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from audit.services import record_audit
from ratelimits.models import MAX_PER_MINUTE, WorkspaceRateLimit

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Limits:
    workspace: int  # requests per minute for the whole workspace
    token: int  # requests per minute for each token (or signed-in user)


def default_limits() -> Limits:
    conf = settings.RATELIMIT
    return Limits(conf["WORKSPACE_PER_MINUTE"], conf["TOKEN_PER_MINUTE"])


# Every API request needs its workspace's limits: a few seconds' cache per process spares a
# query each time; a change made here is seen at once, elsewhere within CACHE_SECONDS.
_cache: dict[int, tuple[float, Limits]] = {}
_cache_lock = threading.Lock()


def limits_for(workspace_id: int | None) -> Limits:
    if workspace_id is None:
        return default_limits()
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(workspace_id)
    if cached and cached[0] > now:
        return cached[1]
    limits = _load(workspace_id)
    with _cache_lock:
        _cache[workspace_id] = (now + CACHE_SECONDS, limits)
    return limits


def _load(workspace_id: int) -> Limits:
    defaults = default_limits()
    row = (
        WorkspaceRateLimit.objects.filter(workspace_id=workspace_id)
        .values_list("requests_per_minute", "token_requests_per_minute")
        .first()
    )
    if row is None:
        return defaults
    return Limits(row[0] or defaults.workspace, row[1] or defaults.token)


def forget_cached(workspace_id: int | None = None) -> None:
    with _cache_lock:
        if workspace_id is None:
            _cache.clear()
        else:
            _cache.pop(workspace_id, None)


def _check(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PER_MINUTE:
        raise ValueError(f"{field} must be a whole number from 1 to {MAX_PER_MINUTE}, or empty")
    return value


@transaction.atomic
def rate_limit_set(
    *,
    workspace: Workspace,
    requests_per_minute: int | None,
    token_requests_per_minute: int | None,
    actor: str,
) -> WorkspaceRateLimit:
    """Set a workspace's limits (None: the default) and record the change in the audit log."""
    per_ws = _check(requests_per_minute, "requests_per_minute")
    per_token = _check(token_requests_per_minute, "token_requests_per_minute")
    row, _ = WorkspaceRateLimit.objects.select_for_update().get_or_create(workspace=workspace)
    before = {
        "requests_per_minute": row.requests_per_minute,
        "token_requests_per_minute": row.token_requests_per_minute,
    }
    row.requests_per_minute, row.token_requests_per_minute = per_ws, per_token
    row.updated_at = timezone.now()
    row.save()
    after = {"requests_per_minute": per_ws, "token_requests_per_minute": per_token}
    if after != before:
        record_audit(
            workspace=workspace,
            actor=actor,
            action="ratelimit.changed",
            target=f"workspace:{workspace.slug}",
            details={"from": before, "to": after},
        )
    # Now for this request, and again at commit in case another thread cached the old row.
    forget_cached(workspace.pk)
    transaction.on_commit(lambda: forget_cached(workspace.pk))
    return row
