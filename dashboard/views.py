"""The control room's pages: thin views over dashboard.selectors and the services.

GET views render a whole page, or one partial of it for htmx; POST views call exactly one
service and answer with the updated partial, a domain error becoming a visible message.
Outsiders get 404 for every workspace URL, members without the right 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from accounts.permissions import Principal
from dashboard import charts, graphs, live, metrics, selectors, views_context
from dashboard import search as activity
from orchestration.errors import DomainError
from orchestration.models import EventKind, Project, SubtaskStatus
from orchestration.services import planning, transitions

METRIC_WINDOWS = (7, 14, 30, 90)


def workspace_view(view: Callable) -> Callable:
    """Resolve `code` to a workspace the user belongs to (else 404) and pass it on."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, code, **kwargs) -> HttpResponse:
        workspace = selectors.workspace_for(request.user, code)
        if workspace is None:
            raise Http404("no such workspace")
        request.rights = selectors.rights_in(request.user, workspace.pk)
        return view(request, workspace, **kwargs)

    return wrapper


def _page(
    request: HttpRequest, template: str, context: dict, *, live_view: str = ""
) -> HttpResponse:
    if live_view:
        context["live_query"] = live_view
        context["last_event_id"] = selectors.last_event_id(context["workspace"].pk)
    return render(request, template, context)


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    workspaces = list(selectors.workspaces_for(request.user))
    if len(workspaces) == 1:
        return redirect("dashboard:workspace", code=workspaces[0].code)
    return render(request, "dashboard/home.html", {"workspaces": workspaces})


@require_GET
@workspace_view
def room(request: HttpRequest, workspace) -> HttpResponse:
    context = views_context.room(workspace, request.rights)
    context["events"] = selectors.timeline(workspace.pk)
    context["projects"] = selectors.projects(workspace.pk)
    return _page(request, "dashboard/room.html", context, live_view="view=room")


@require_GET
@workspace_view
def live_sync(request: HttpRequest, workspace) -> HttpResponse:
    """What a page missed since `after`, as the same fragments the websocket pushes."""
    after = request.GET.get("after", "")
    if not after.isdigit():
        return HttpResponse("after=<event id> is required", status=400)
    view = live.LiveView.parse(request.GET)
    limit = 200
    events = selectors.events_after(workspace.pk, int(after), limit=limit)
    html = live.render_updates(
        workspace, view, events, request.rights, prev_id=int(after), more=len(events) == limit
    )
    return HttpResponse(html)


@require_POST
@workspace_view
def feature_new(request: HttpRequest, workspace) -> HttpResponse:
    project = Project.objects.filter(
        workspace=workspace, code=request.POST.get("project") or None
    ).first()
    # A role on the chosen project (an override) decides over the workspace role.
    if not request.rights.on(project.pk if project else None).edit:
        return HttpResponseForbidden("Your role in this workspace cannot request features.")
    title = request.POST.get("title", "").strip()
    context = {
        "workspace": workspace,
        "projects": selectors.projects(workspace.pk),
        "rights": request.rights,
    }
    if project is None:
        context["error"] = "Choose the project the feature is for."
    else:
        try:
            feature = planning.feature_request(
                project=project,
                title=title,
                description=request.POST.get("description", ""),
                actor=f"user:{request.user.username}",
                created_by=request.user,
            )
        except DomainError as error:
            context["error"] = error.message
        else:
            context["created"] = feature
    if not request.htmx:
        if "error" in context:
            messages.error(request, context["error"])
        else:
            messages.success(request, f"Feature requested: {title}. Orion is planning it.")
        return redirect("dashboard:workspace", code=workspace.code)
    context["values"] = request.POST if "error" in context else {}
    return render(request, "dashboard/room.html#new-feature", context)


@require_GET
@workspace_view
def board(request: HttpRequest, workspace) -> HttpResponse:
    filters = selectors.BoardFilters.from_query(request.GET)
    context = views_context.board(workspace, filters, request.rights)
    context.update(selectors.board_choices(workspace.pk))
    context["roles"] = [
        ("pm", "Orion (PM)"),
        ("tester", "Tara (tester)"),
        ("developer", "Devon (developer)"),
    ]
    context["risks"] = ["low", "medium", "high"]
    query = "view=board" + (f"&{context['query']}" if context["query"] else "")
    return _page(request, "dashboard/board.html", context, live_view=query)


@require_POST
@workspace_view
def subtask_transition(request: HttpRequest, workspace, subtask, name: str) -> HttpResponse:
    found = selectors.subtask_in(workspace.pk, subtask)
    if found is None:
        raise Http404("no such subtask")
    rights = request.rights.on(found.project_id)  # a project override decides here
    needed = rights.review if name in selectors.REVIEW_TRANSITIONS else rights.edit
    if not needed:
        return HttpResponseForbidden("Your role in this workspace cannot move this subtask.")
    error, status = "", 200
    try:
        found = transitions.subtask_transition(
            subtask=found,
            name=name,
            actor=f"user:{request.user.username}",
            reason=request.POST.get("reason", ""),
            principal=Principal(user=request.user),
        )
    except DomainError as exc:
        # htmx swaps 4xx answers in as well (base.html), so the refusal keeps its status.
        error, status = exc.message, exc.status_code
        found.refresh_from_db()
    if not request.htmx:
        (messages.error if error else messages.success)(
            request, error or f"{found.key}: {name.replace('_', ' ')} done."
        )
        return redirect("dashboard:subtask", code=workspace.code, subtask=found.code)
    if request.GET.get("from") == "board":
        filters = selectors.BoardFilters.from_query(request.GET)
        context = views_context.board(workspace, filters, request.rights)
        context["error"] = error
        return render(request, "dashboard/board.html#columns", context, status=status)
    context = views_context.subtask(workspace, found, request.rights, error=error)
    return render(request, "dashboard/subtask.html#header", context, status=status)


@require_GET
@workspace_view
def states(request: HttpRequest, workspace) -> HttpResponse:
    return _page(
        request, "dashboard/states.html", views_context.states(workspace), live_view="view=states"
    )


@require_GET
@workspace_view
def feature(request: HttpRequest, workspace, feature) -> HttpResponse:
    found = selectors.feature_in(workspace.pk, feature)
    if found is None:
        raise Http404("no such feature")
    context = views_context.feature(workspace, found)
    context["events"] = selectors.timeline(workspace.pk, feature_id=found.pk)
    return _page(
        request, "dashboard/feature.html", context, live_view=f"view=feature&code={found.code}"
    )


@require_GET
@workspace_view
def subtask(request: HttpRequest, workspace, subtask) -> HttpResponse:
    found = selectors.subtask_in(workspace.pk, subtask)
    if found is None:
        raise Http404("no such subtask")
    context = views_context.subtask(workspace, found, request.rights)
    context["events"] = selectors.timeline(workspace.pk, subtask_id=found.pk, limit=100)
    context["briefing"] = selectors.latest_briefing(found)
    context["changeset"], context["approvals"] = selectors.subtask_review(found)
    return _page(
        request, "dashboard/subtask.html", context, live_view=f"view=subtask&code={found.code}"
    )


@require_GET
@workspace_view
def run(request: HttpRequest, workspace, run) -> HttpResponse:
    found = selectors.run_in(workspace.pk, run)
    if found is None:
        raise Http404("no such run")
    context = {"workspace": workspace, "run": found}
    if request.htmx and request.GET.get("part") == "log":
        return render(request, "dashboard/run.html#live", context)
    return _page(request, "dashboard/run.html", context, live_view=f"view=run&code={found.code}")


@require_GET
@workspace_view
def tests(request: HttpRequest, workspace) -> HttpResponse:
    return _page(
        request, "dashboard/tests.html", views_context.tests(workspace), live_view="view=tests"
    )


@require_GET
@workspace_view
def metrics_page(request: HttpRequest, workspace) -> HttpResponse:
    window = int(request.GET.get("days", 14)) if request.GET.get("days", "14").isdigit() else 14
    window = window if window in METRIC_WINDOWS else 14
    ws = workspace.pk
    throughput, first_pass = metrics.throughput_and_first_pass(ws, window)
    human, rollback = metrics.transition_rates(ws, window)
    series = [
        throughput,
        first_pass,
        metrics.time_to_green(ws, window),
        human,
        rollback,
        metrics.cost_per_day(ws, window),
        *metrics.agent_success_series(ws, window),
    ]
    context = {
        "workspace": workspace,
        "window": window,
        "windows": METRIC_WINDOWS,
        "charts": [(s, charts.chart_svg(s), charts.summary(s)) for s in series],
        "agents": metrics.agents(ws, window),
        "features": metrics.cost_by_feature(ws, window),
        "per_task": metrics.cost_per_task(ws, window),
        "duration": graphs.duration_label,
    }
    return render(request, "dashboard/metrics.html", context)


@require_GET
@workspace_view
def search(request: HttpRequest, workspace) -> HttpResponse:
    query = activity.ActivityQuery.from_query(request.GET)
    page = activity.search(workspace.pk, query)
    params = request.GET.copy()
    params.pop("before", None)
    context = {
        "workspace": workspace,
        "query": query,
        "page": page,
        "base_query": params.urlencode(),
        "projects": selectors.projects(workspace.pk),
        "kinds": sorted({k.split(".")[0] for k in EventKind.values}),
        "states": SubtaskStatus.choices,
        "agents": [("pm", "Orion"), ("tester", "Tara"), ("developer", "Devon")],
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "dashboard/search.html#results", context)
        # The address bar gets the clean query (no empty filters): shareable, and back works.
        clean = {k: v for k, v in request.GET.items() if v}
        return push_url(response, f"{request.path}?{urlencode(clean)}" if clean else request.path)
    return render(request, "dashboard/search.html", context)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for the load balancer and compose: the database answers a trivial query."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
