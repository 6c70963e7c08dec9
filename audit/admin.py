from django.contrib import admin

from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, so the admin can look but never add, edit or delete."""

    list_display = ["created_at", "workspace", "seq", "actor", "action", "target"]
    list_filter = ["action"]
    search_fields = ["actor", "action", "target"]
    list_select_related = ["workspace"]
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
