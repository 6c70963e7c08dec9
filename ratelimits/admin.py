from django.contrib import admin
from django.db.models import QuerySet

from accounts.models import Workspace
from accounts.permissions import Action, Principal, can, visible_workspaces
from ratelimits.models import WorkspaceRateLimit
from ratelimits.services import rate_limit_set


def admin_workspaces(user) -> QuerySet[Workspace]:
    """The workspaces whose limits this person may set: where they are an admin."""
    if user.is_superuser:
        return Workspace.objects.all()
    principal = Principal(user=user)
    ids = [w.pk for w in visible_workspaces(principal) if can(principal, Action.ADMIN, w.pk)]
    return Workspace.objects.filter(pk__in=ids)


@admin.register(WorkspaceRateLimit)
class WorkspaceRateLimitAdmin(admin.ModelAdmin):
    """Workspace admins (with staff access) set their own workspaces' limits; audited."""

    list_display = ["workspace", "requests_per_minute", "token_requests_per_minute", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(workspace__in=admin_workspaces(request.user))

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "updated_at"] if obj else ["updated_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "workspace":
            kwargs["queryset"] = admin_workspaces(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _may(self, request, obj=None) -> bool:
        if not request.user.is_active or not request.user.is_staff:
            return False
        allowed = admin_workspaces(request.user)
        if obj is None:
            return allowed.exists()
        return allowed.filter(pk=obj.workspace_id).exists()

    def has_module_permission(self, request) -> bool:
        return self._may(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._may(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # emptying both values returns to the defaults, and is audited

    def save_model(self, request, obj, form, change) -> None:
        saved = rate_limit_set(
            workspace=obj.workspace,
            requests_per_minute=obj.requests_per_minute,
            token_requests_per_minute=obj.token_requests_per_minute,
            actor=f"user:{request.user.get_username()}",
        )
        obj.updated_at = saved.updated_at
