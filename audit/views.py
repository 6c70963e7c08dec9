"""The audit log page of a workspace (admins only) and its downloads."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.permissions import Principal
from audit.access import workspace_for_audit
from audit.exports import FORMATS, export_response
from audit.selectors import RangeError, TimeRange, entries_in_range, parse_range

PAGE_SIZE = 100


def _filters(request: HttpRequest) -> tuple[dict[str, str], TimeRange, RangeError | None]:
    raw = {k: request.GET.get(k, "").strip() for k in ("from", "to", "action", "actor")}
    try:
        return raw, parse_range(raw["from"], raw["to"]), None
    except RangeError as exc:
        return raw, TimeRange(), exc


@require_GET
@login_required
def audit_log(request: HttpRequest, code) -> HttpResponse:
    workspace = workspace_for_audit(Principal(user=request.user), code)
    raw, time_range, problem = _filters(request)
    entries = entries_in_range(
        workspace=workspace, time_range=time_range, action=raw["action"], actor=raw["actor"]
    )
    recent = list(entries.order_by("-seq")[:PAGE_SIZE]) if not problem else []
    span = {k: raw[k] for k in ("from", "to") if raw[k]}
    context = {
        "workspace": workspace,
        "entries": recent,
        "filters": raw,
        "problem": problem,
        "page_size": PAGE_SIZE,
        "downloads": [(fmt, "?" + urlencode({**span, "format": fmt})) for fmt in FORMATS],
    }
    return render(request, "audit/log.html", context, status=400 if problem else 200)


@require_GET
@login_required
def audit_download(request: HttpRequest, code) -> HttpResponse:
    workspace = workspace_for_audit(Principal(user=request.user), code)
    fmt = request.GET.get("format", "jsonl")
    if fmt not in FORMATS:
        return JsonResponse({"format": [f"format must be one of {', '.join(FORMATS)}"]}, status=400)
    try:
        time_range = parse_range(request.GET.get("from"), request.GET.get("to"))
    except RangeError as exc:
        return JsonResponse({exc.field: [exc.message]}, status=400)
    return export_response(
        entries_in_range(workspace=workspace, time_range=time_range),
        fmt,
        f"audit-{workspace.slug}",
        asynchronous=isinstance(request, ASGIRequest),
    )
