from django.contrib import admin

from review.models import Approval, ChangeSet, ReviewComment, Revision


@admin.register(ChangeSet)
class ChangeSetAdmin(admin.ModelAdmin):
    list_display = ["branch", "project", "status", "risk", "head_sha", "updated_at"]
    list_filter = ["status", "risk", "workspace"]
    readonly_fields = ["code", "status", "created_at", "updated_at"]


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ["changeset", "number", "head_sha", "pushed_by", "files_changed", "created_at"]
    readonly_fields = ["files"]


@admin.register(ReviewComment)
class ReviewCommentAdmin(admin.ModelAdmin):
    list_display = ["changeset", "path", "side", "first_line", "state", "author_label"]
    list_filter = ["state"]
    readonly_fields = ["code", "state"]


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["feature", "kind", "state", "risk", "auto", "decided_by_label", "created_at"]
    list_filter = ["kind", "state", "risk"]
    # Decisions go through the service (separation of duties), never through this form.
    readonly_fields = [f.name for f in Approval._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
