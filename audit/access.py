"""Who may read a workspace's audit log: its admins only (outsiders get 404, others 403)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import Workspace
from accounts.permissions import Action, Principal, can, visible_workspaces

DENIED = "only workspace admins may read the audit log"


def workspace_for_audit(principal: Principal, code) -> Workspace:
    workspace = visible_workspaces(principal).filter(code=code).first()
    if workspace is None:
        raise Http404("no such workspace")
    if not can(principal, Action.ADMIN, workspace.pk):
        raise PermissionDenied(DENIED)
    return workspace
