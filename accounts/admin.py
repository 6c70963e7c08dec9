from django.contrib import admin, messages
from django.db.models import QuerySet

from accounts import services
from accounts.models import ApiToken, Invite, Membership, ProjectRole, Workspace
from accounts.permissions import Action, Principal, workspaces_where
from orchestration.errors import DomainError


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """Staff who are not superusers see only rows of workspaces they administer.

    The access policy is `accounts.permissions`, as everywhere else; other apps' admin
    classes can inherit this (set `workspace_field` when the path differs).
    """

    workspace_field = "workspace"

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        administered = workspaces_where(Principal(user=request.user), Action.ADMIN).values("pk")
        if queryset.model is Workspace:
            return queryset.filter(pk__in=administered)
        return queryset.filter(**{f"{self.workspace_field}__in": administered})


def _actor(request) -> str:
    return f"user:{request.user.username}"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(WorkspaceScopedAdmin):
    list_display = ["name", "slug", "code", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["code", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]
    list_select_related = ["user", "workspace"]

    def save_model(self, request, obj, form, change) -> None:
        # Role changes go through the service: the last admin stays, and the audit log knows.
        if change and "role" in form.changed_data:
            role = obj.role
            obj.role = form.initial["role"]
            try:
                services.member_role_change(membership=obj, role=role, actor=_actor(request))
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            return
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj) -> None:
        try:
            services.member_remove(membership=obj, actor=_actor(request))
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)


@admin.register(ProjectRole)
class ProjectRoleAdmin(WorkspaceScopedAdmin):
    list_display = ["user", "project", "role", "workspace", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "project__name"]
    list_select_related = ["user", "project", "workspace"]
    readonly_fields = ["user", "project", "workspace", "role", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # set on the workspace's Members & access page (audited there)


@admin.register(Invite)
class InviteAdmin(WorkspaceScopedAdmin):
    list_display = ["email", "workspace", "role", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["email"]
    readonly_fields = [f.name for f in Invite._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # the link is shown once, on the Members & access page


@admin.register(ApiToken)
class ApiTokenAdmin(WorkspaceScopedAdmin):
    list_display = [
        "name",
        "kind",
        "prefix",
        "user",
        "workspace",
        "project",
        "agent_role",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["kind", "agent_role", "workspace"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user", "workspace", "project"]
    readonly_fields = ["code", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # Keys are shown once at creation, on the workspace's Members & access page (and
        # its API), which display the raw key safely and record it in the audit log.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        revoked = sum(
            services.token_revoke(token=token, actor=_actor(request)) for token in queryset
        )
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
