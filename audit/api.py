"""`GET /api/v1/workspaces/{code}/audit/?from=&to=&format=jsonl|csv`: the audit export."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from accounts.permissions import principal_from_request
from audit.access import workspace_for_audit
from audit.exports import FORMATS, export_response
from audit.selectors import RangeError, entries_in_range, parse_range


class ExportNegotiation(BaseContentNegotiation):
    """`format` names the export, not a DRF renderer; errors are always JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None


class AuditExportView(APIView):
    workspace_url_kwarg = "code"  # lets the rate limit charge the request to this workspace
    renderer_classes = [JSONRenderer]
    content_negotiation_class = ExportNegotiation

    @extend_schema(
        operation_id="workspaces_audit_export",
        parameters=[
            OpenApiParameter("code", OpenApiTypes.UUID, OpenApiParameter.PATH),
            OpenApiParameter(
                "from", OpenApiTypes.DATETIME, description="first moment included (ISO 8601)"
            ),
            OpenApiParameter(
                "to", OpenApiTypes.DATETIME, description="end, excluded; later than from"
            ),
            OpenApiParameter("format", str, enum=list(FORMATS), default="jsonl"),
        ],
        responses={
            (200, "application/jsonl"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            400: OpenApiResponse(description="a bad from, to or format"),
            403: OpenApiResponse(description="not an admin of this workspace"),
            404: OpenApiResponse(description="no such workspace"),
        },
    )
    def get(self, request, code):
        workspace = workspace_for_audit(principal_from_request(request), code)
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ValidationError({"format": [f"format must be one of {', '.join(FORMATS)}"]})
        try:
            time_range = parse_range(
                request.query_params.get("from"), request.query_params.get("to")
            )
        except RangeError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        entries = entries_in_range(workspace=workspace, time_range=time_range)
        return export_response(
            entries,
            fmt,
            f"audit-{workspace.slug}",
            asynchronous=isinstance(request._request, ASGIRequest),
        )
