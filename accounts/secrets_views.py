"""The secrets page for workspace admins: the name-by-environment matrix and the grants.

Every cell can be set, replaced or deleted, but never shown: values only go in. Each
POST calls one service and comes back to the page with what happened.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from accounts import secrets
from accounts.models import Workspace
from accounts.permissions import (
    Action,
    Principal,
    can,
    principal_from_request,
    visible_workspaces,
)
from accounts.scrubbing import MASK

app_name = "secrets"


def _admin_workspace(request: HttpRequest, code) -> tuple[Principal, Workspace]:
    principal = principal_from_request(request)
    workspace = visible_workspaces(principal).filter(code=code).first()
    if workspace is None:
        raise Http404("no such workspace")
    if not can(principal, Action.ADMIN, workspace.pk):
        raise PermissionDenied("Only workspace admins manage secrets.")
    return principal, workspace


def _back(workspace: Workspace) -> HttpResponse:
    return redirect("secrets:page", code=workspace.code)


@login_required
@require_GET
def page(request: HttpRequest, code) -> HttpResponse:
    _, workspace = _admin_workspace(request, code)
    all_secrets = list(secrets.secrets_of(workspace))
    profiles = list(secrets.profiles_of(workspace).only("code", "name", "role"))
    granted = {(p.pk, s.pk) for s in all_secrets for p in s.granted_to.all()}
    context = {
        "workspace": workspace,
        "environments": secrets.ENVIRONMENTS,
        "rows": secrets.secret_matrix(all_secrets),
        "secrets": all_secrets,
        "profiles": [
            (profile, [(s, (profile.pk, s.pk) in granted) for s in all_secrets])
            for profile in profiles
        ],
        "mask": MASK,
        "min_length": secrets.MIN_SCRUBBED_LENGTH,
    }
    return render(request, "accounts/secrets.html", context)


@login_required
@require_POST
def secret_set(request: HttpRequest, code) -> HttpResponse:
    principal, workspace = _admin_workspace(request, code)
    try:
        secret, created = secrets.secret_set(
            workspace=workspace,
            name=request.POST.get("name", "").strip(),
            environment=request.POST.get("environment", ""),
            value=request.POST.get("value", ""),
            actor=principal.label,
        )
    except secrets.SecretError as error:
        messages.error(request, str(error))
    else:
        verb = "set" if created else "replaced"
        messages.success(request, f"{secret.name} ({secret.environment}) {verb}.")
    return _back(workspace)


@login_required
@require_POST
def secret_delete(request: HttpRequest, code, secret) -> HttpResponse:
    principal, workspace = _admin_workspace(request, code)
    try:
        target = secrets.secret_get(workspace, secret)
        secrets.secret_delete(secret=target, actor=principal.label)
    except secrets.SecretNotFound:
        raise Http404("no such secret") from None
    messages.success(request, f"{target.name} ({target.environment}) deleted.")
    return _back(workspace)


@login_required
@require_POST
def grants_set(request: HttpRequest, code, profile) -> HttpResponse:
    principal, workspace = _admin_workspace(request, code)
    try:
        grantee = secrets.profile_get(workspace, profile)
        changed = secrets.profile_grants_set(
            workspace=workspace,
            profile=grantee,
            secret_codes=request.POST.getlist("secret"),
            actor=principal.label,
        )
    except secrets.SecretNotFound:
        raise Http404("no such agent profile or secret") from None
    except secrets.SecretError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Grants of {grantee.name} saved ({changed} changed).")
    return _back(workspace)


W = "w/<uuid:code>/secrets/"

urlpatterns = [
    path(W, page, name="page"),
    path(W + "set/", secret_set, name="set"),
    path(W + "<uuid:secret>/delete/", secret_delete, name="delete"),
    path(W + "grants/<uuid:profile>/", grants_set, name="grants"),
]
