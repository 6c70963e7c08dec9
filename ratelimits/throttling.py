"""The API's rate limit as a DRF throttle: per workspace and per token, answering 429."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiToken, Workspace
from accounts.permissions import principal_from_request, visible_workspaces
from ratelimits.counters import Counter, Decision, hit
from ratelimits.services import limits_for


class RateLimited(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "rate_limited"

    def __init__(self, decision: Decision) -> None:
        counter = decision.counter
        whose = "this workspace" if counter.scope == "workspace" else "this token"
        message = (
            f"rate limit reached: {counter.limit} requests per minute for {whose}; "
            f"retry in {decision.retry_after} s"
        )
        super().__init__(message)
        # Set after __init__, which would turn the numbers into strings.
        self.detail = {
            "detail": message,
            "code": self.default_code,
            "scope": counter.scope,
            "limit": counter.limit,
            "retry_after": decision.retry_after,
        }
        # DRF's exception handler turns `wait` into the Retry-After header.
        self.wait = decision.retry_after


class WorkspaceRateThrottle(BaseThrottle):
    """Charges each authenticated API request to its token (or user) and its workspace.

    The workspace is the agent token's, or, for people, the workspace of the object the URL
    names (when the caller can see it); requests that name none count only per token.
    """

    def allow_request(self, request, view) -> bool:
        if not settings.RATELIMIT["ENABLED"]:
            return True
        caller = _caller_key(request)
        if caller is None:
            return True  # anonymous: authentication refuses what needs it
        workspace_id = request_workspace_id(request, view)
        limits = limits_for(workspace_id)
        prefix = settings.RATELIMIT["PREFIX"]
        counters = [Counter(f"{prefix}:{caller}", limits.token, "token")]
        if workspace_id is not None:
            counters.append(Counter(f"{prefix}:w{workspace_id}", limits.workspace, "workspace"))
        decision = hit(counters)
        if not decision.allowed:
            raise RateLimited(decision)
        return True


def _caller_key(request) -> str | None:
    if isinstance(request.auth, ApiToken):
        return f"t{request.auth.pk}"
    if request.user and request.user.is_authenticated and request.user.pk:
        return f"u{request.user.pk}"
    return None


def request_workspace_id(request, view) -> int | None:
    token = request.auth if isinstance(request.auth, ApiToken) else None
    if token is not None and token.workspace_id:
        return token.workspace_id
    kwargs = getattr(view, "kwargs", None) or {}
    workspace_kwarg = getattr(view, "workspace_url_kwarg", None)
    try:
        if workspace_kwarg and kwargs.get(workspace_kwarg):
            visible = visible_workspaces(principal_from_request(request))
            return visible.filter(code=kwargs[workspace_kwarg]).values_list("pk", flat=True).first()
        # Not isinstance(GenericAPIView): importing DRF's views here would be circular.
        if hasattr(view, "get_queryset") and hasattr(view, "lookup_field"):
            return _object_workspace(view, kwargs)
    except (DjangoValidationError, ValueError, TypeError):
        return None  # a malformed code: the view answers 404 or 400 itself
    return None


def _object_workspace(view, kwargs: dict) -> int | None:
    lookup = view.lookup_url_kwarg or view.lookup_field
    if not kwargs.get(lookup):
        return None
    queryset = view.get_queryset().filter(**{view.lookup_field: kwargs[lookup]})
    if queryset.model is Workspace:
        return queryset.values_list("pk", flat=True).first()
    if any(f.name == "workspace" for f in queryset.model._meta.concrete_fields):
        return queryset.values_list("workspace_id", flat=True).first()
    return None
