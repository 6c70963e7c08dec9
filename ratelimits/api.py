"""`/api/v1/workspaces/{code}/rate-limits/`: members read the limits, admins change them."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Workspace
from accounts.permissions import Action, can, principal_from_request, visible_workspaces
from ratelimits.models import MAX_PER_MINUTE, WorkspaceRateLimit
from ratelimits.services import default_limits, limits_for, rate_limit_set


class RateLimitsSerializer(serializers.Serializer):
    requests_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_PER_MINUTE, allow_null=True
    )
    token_requests_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_PER_MINUTE, allow_null=True
    )


class RateLimitsOutSerializer(RateLimitsSerializer):
    effective_requests_per_minute = serializers.IntegerField(read_only=True)
    effective_token_requests_per_minute = serializers.IntegerField(read_only=True)
    default_requests_per_minute = serializers.IntegerField(read_only=True)
    default_token_requests_per_minute = serializers.IntegerField(read_only=True)


def _body(workspace: Workspace) -> dict:
    row = WorkspaceRateLimit.objects.filter(workspace=workspace).first()
    effective, defaults = limits_for(workspace.pk), default_limits()
    return {
        "requests_per_minute": row.requests_per_minute if row else None,
        "token_requests_per_minute": row.token_requests_per_minute if row else None,
        "effective_requests_per_minute": effective.workspace,
        "effective_token_requests_per_minute": effective.token,
        "default_requests_per_minute": defaults.workspace,
        "default_token_requests_per_minute": defaults.token,
    }


class WorkspaceRateLimitsView(APIView):
    workspace_url_kwarg = "code"  # lets the throttle charge the request to this workspace

    def _workspace(self, request, code, action: Action) -> Workspace:
        principal = principal_from_request(request)
        workspace = visible_workspaces(principal).filter(code=code).first()
        if workspace is None:
            raise Http404("no such workspace")
        if not can(principal, action, workspace.pk):
            raise PermissionDenied("only workspace admins may change the rate limits")
        return workspace

    @extend_schema(
        operation_id="workspaces_rate_limits_read",
        responses={200: RateLimitsOutSerializer, 404: OpenApiResponse(description="not found")},
    )
    def get(self, request, code):
        return Response(_body(self._workspace(request, code, Action.VIEW)))

    @extend_schema(
        operation_id="workspaces_rate_limits_update",
        request=RateLimitsSerializer,
        responses={
            200: RateLimitsOutSerializer,
            400: OpenApiResponse(description="a value out of range"),
            403: OpenApiResponse(description="not an admin of this workspace"),
            404: OpenApiResponse(description="not found"),
        },
    )
    def put(self, request, code):
        workspace = self._workspace(request, code, Action.ADMIN)
        data = RateLimitsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rate_limit_set(
            workspace=workspace, actor=principal_from_request(request).label, **data.validated_data
        )
        return Response(_body(workspace))
