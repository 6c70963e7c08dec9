"""Members & access: invites, roles, project overrides and agent tokens of a workspace.

Thin views over `accounts.services`. Admins only (403 for other members, 404 for everyone
else); htmx posts get the updated panel back, plain posts a redirect (or the page, when a
secret must be shown once or a form has errors).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from types import SimpleNamespace

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import (
    InviteForm,
    ProjectRoleForm,
    RoleForm,
    SignUpForm,
    TokenForm,
)
from accounts.models import ApiToken, Invite, Membership
from accounts.permissions import Action, Principal, can, visible_workspaces
from orchestration.errors import DomainError

PANEL = "accounts/access.html#panel"
PAGE = "accounts/access.html"


def admin_view(view: Callable) -> Callable:
    """Resolve `code` to a workspace of the user (else 404) where they are admin (else 403)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, code, **kwargs) -> HttpResponse:
        workspace = selectors.workspace_of(request.user, code)
        if workspace is None:
            raise Http404("no such workspace")
        if not can(Principal(user=request.user), Action.ADMIN, workspace):
            return render(
                request,
                "accounts/forbidden.html",
                {"workspace": workspace},
                status=403,
            )
        # The header shows the admin-only link from this (as on the dashboard's pages).
        request.rights = SimpleNamespace(admin=True)
        request.actor = f"user:{request.user.username}"
        return view(request, workspace, **kwargs)

    return wrapper


def _context(workspace, **extra) -> dict:
    page = selectors.access_page(workspace)
    context = {
        "workspace": workspace,
        "page": page,
        "invite_form": InviteForm(),
        "override_form": ProjectRoleForm(members=page.members, projects=page.projects),
        "token_form": TokenForm(projects=page.projects),
        "roles": Membership._meta.get_field("role").choices,
    }
    context.update(extra)
    return context


def _respond(
    request: HttpRequest, workspace, *, status: int = 200, notice: str = "", **extra
) -> HttpResponse:
    context = _context(workspace, notice=notice, **extra)
    if request.htmx:
        return render(request, PANEL, context, status=status)
    if status >= 400 or extra.get("reveal"):
        return render(request, PAGE, context, status=status)
    messages.success(request, notice)
    return redirect("accounts:access", code=workspace.code)


def _failed(request, workspace, error: DomainError, form, form_name: str) -> HttpResponse:
    field = error.details.get("field")
    if form is not None and field in form.fields:
        form.add_error(field, error.message)
    return _respond(
        request, workspace, status=error.status_code, error=error.message, **{form_name: form}
    )


@require_GET
@admin_view
def access(request: HttpRequest, workspace) -> HttpResponse:
    return render(request, PAGE, _context(workspace))


@require_POST
@admin_view
def invite_create(request: HttpRequest, workspace) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _respond(request, workspace, status=400, invite_form=form)
    try:
        invite, token = services.member_invite(
            workspace=workspace,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
            actor=request.actor,
        )
    except DomainError as error:
        return _failed(request, workspace, error, form, "invite_form")
    link = request.build_absolute_uri(reverse("accounts:invite", args=[token]))
    return _respond(
        request,
        workspace,
        notice=f"Invited {invite.email} as {invite.role}.",
        reveal={
            "title": f"Invite link for {invite.email}",
            "value": link,
            "hint": f"Send this link to {invite.email}. It works once, until "
            f"{invite.expires_at:%Y-%m-%d %H:%M} UTC.",
        },
    )


@require_POST
@admin_view
def invite_revoke(request: HttpRequest, workspace, invite) -> HttpResponse:
    found = Invite.objects.filter(workspace=workspace, code=invite).first()
    if found is None:
        raise Http404("no such invite")
    services.invite_revoke(invite=found, actor=request.actor)
    return _respond(request, workspace, notice=f"Withdrew the invite of {found.email}.")


def _membership(workspace, pk: int) -> Membership:
    found = (
        Membership.objects.filter(workspace=workspace, pk=pk)
        .select_related("user", "workspace")
        .first()
    )
    if found is None:
        raise Http404("no such member")
    return found


@require_POST
@admin_view
def member_role(request: HttpRequest, workspace, member: int) -> HttpResponse:
    membership = _membership(workspace, member)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _respond(
            request, workspace, status=400, error=form.errors["role"][0], role_error=membership.pk
        )
    try:
        services.member_role_change(
            membership=membership, role=form.cleaned_data["role"], actor=request.actor
        )
    except DomainError as error:
        return _respond(
            request, workspace, status=error.status_code, error=error.message,
            role_error=membership.pk,
        )  # fmt: skip
    return _respond(
        request,
        workspace,
        notice=f"{membership.user.username} is now {form.cleaned_data['role']}.",
    )


@require_POST
@admin_view
def member_remove(request: HttpRequest, workspace, member: int) -> HttpResponse:
    membership = _membership(workspace, member)
    try:
        services.member_remove(membership=membership, actor=request.actor)
    except DomainError as error:
        return _respond(request, workspace, status=error.status_code, error=error.message)
    if membership.user_id == request.user.pk:
        # Whoever removed themselves is no longer allowed here: back to their workspaces.
        messages.success(request, f"You left {workspace.name}.")
        if request.htmx:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("dashboard:home")
            return response
        return redirect("dashboard:home")
    return _respond(
        request, workspace, notice=f"Removed {membership.user.username} from {workspace.name}."
    )


@require_POST
@admin_view
def project_role(request: HttpRequest, workspace) -> HttpResponse:
    page = selectors.access_page(workspace)
    form = ProjectRoleForm(request.POST, members=page.members, projects=page.projects)
    if not form.is_valid():
        return _respond(request, workspace, status=400, override_form=form)
    membership = next(m for m in page.members if m.user_id == form.cleaned_data["member"])
    project = next(p for p in page.projects if str(p.code) == form.cleaned_data["project"])
    role = form.cleaned_data["role"] or None
    try:
        services.project_role_set(
            project=project, user=membership.user, role=role, actor=request.actor
        )
    except DomainError as error:
        return _failed(request, workspace, error, form, "override_form")
    what = role or f"their workspace role ({membership.role})"
    return _respond(
        request,
        workspace,
        notice=f"{membership.user.username} has {what} on {project.name}.",
    )


@require_POST
@admin_view
def token_create(request: HttpRequest, workspace) -> HttpResponse:
    projects = list(selectors.projects(workspace))
    form = TokenForm(request.POST, projects=projects)
    if not form.is_valid():
        return _respond(request, workspace, status=400, token_form=form)
    code = form.cleaned_data["project"]
    project = next((p for p in projects if str(p.code) == code), None) if code else None
    try:
        token, raw = services.token_create_for_agent(
            workspace=workspace,
            role=form.cleaned_data["role"],
            name=form.cleaned_data["name"],
            project=project,
            created_by=request.user,
            actor=request.actor,
        )
    except DomainError as error:
        return _failed(request, workspace, error, form, "token_form")
    return _respond(
        request,
        workspace,
        notice=f"Created the agent token {token.name}.",
        reveal={
            "title": f"Key of {token.name}",
            "value": raw,
            "hint": "Copy it now: it is stored hashed and will not be shown again.",
        },
    )


@require_POST
@admin_view
def token_revoke(request: HttpRequest, workspace, token) -> HttpResponse:
    found = ApiToken.objects.filter(
        workspace=workspace, kind=ApiToken.Kind.AGENT, code=token
    ).first()
    if found is None:
        raise Http404("no such token")
    services.token_revoke(token=found, actor=request.actor)
    return _respond(request, workspace, notice=f"Revoked the token {found.name}.")


@require_GET
@login_required
def switcher(request: HttpRequest) -> HttpResponse:
    """The header's workspace menu, loaded when opened (pages pay nothing for it)."""
    workspaces = visible_workspaces(Principal(user=request.user)).order_by("name")
    return render(
        request,
        "accounts/_switcher.html",
        {"workspaces": workspaces, "current": request.GET.get("current", "")},
    )


@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Join a workspace from an invite link: as the signed-in user, or a new account."""
    try:
        invite = services.invite_from_token(token)
    except DomainError as error:
        return render(request, "accounts/invite.html", {"error": error.message}, status=400)
    form = SignUpForm(request.POST or None)
    context = {"invite": invite, "form": form}
    if request.method == "GET":
        return render(request, "accounts/invite.html", context)
    try:
        if request.user.is_authenticated:
            services.invite_accept(token=token, user=request.user)
        else:
            if not form.is_valid():
                return render(request, "accounts/invite.html", context, status=400)
            user = services.user_create_for_invite(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
            )
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    except DomainError as error:
        field = error.details.get("field")
        if field in form.fields:
            form.add_error(field, error.message)
        context["error"] = error.message
        return render(request, "accounts/invite.html", context, status=error.status_code)
    messages.success(request, f"Welcome to {invite.workspace.name}.")
    return redirect("dashboard:workspace", code=invite.workspace.code)
