from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.permissions import Principal
from orchestration import selectors


def _principal(request: HttpRequest) -> Principal:
    return Principal(user=request.user)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    workspaces = list(selectors.workspaces_for(_principal(request)))
    if len(workspaces) == 1:
        return redirect("dashboard:workspace", code=workspaces[0].code)
    return render(request, "dashboard/home.html", {"workspaces": workspaces})


@login_required
def workspace_room(request: HttpRequest, code) -> HttpResponse:
    workspace = selectors.workspaces_for(_principal(request)).filter(code=code).first()
    if workspace is None:
        raise Http404("no such workspace")
    context = {
        "workspace": workspace,
        "counts": selectors.status_counts(workspace),
        "projects": selectors.projects_for(workspace),
        "events": selectors.recent_events(workspace),
        "runs": selectors.runs_in_flight(workspace),
        "waiting": selectors.waiting_for_humans(workspace),
    }
    return render(request, "dashboard/workspace.html", context)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for the load balancer and compose: the database answers a trivial query."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
