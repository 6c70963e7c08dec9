from __future__ import annotations

from rest_framework import permissions

from accounts.permissions import Action, can, principal_from_request


class WorkspaceRole(permissions.BasePermission):
    """Authenticated for lists; the object's workspace role decides each action.

    Querysets are already limited to the caller's workspaces, so an outsider gets 404 before
    this runs; a member without the right gets 403 here.
    """

    message = "your role in this workspace does not allow this"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request, view, obj) -> bool:
        action = required_action(request, view)
        # The object itself, so a project override applies to what belongs to a project.
        return can(principal_from_request(request), action, obj)


def required_action(request, view) -> Action:
    custom = getattr(view, "action_permissions", {}).get(view.action)
    if custom is not None:
        return custom
    if request.method in permissions.SAFE_METHODS:
        return Action.VIEW
    return Action.EDIT
