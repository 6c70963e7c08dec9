from django.contrib import admin

from agents.models import BriefingRecord, Question


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["text", "subtask", "asked_by", "blocks_subtask", "answered_at"]
    list_filter = ["blocks_subtask", "workspace"]
    search_fields = ["text", "answer"]
    raw_id_fields = ["subtask", "run"]
    readonly_fields = ["code", "created_at"]


@admin.register(BriefingRecord)
class BriefingRecordAdmin(admin.ModelAdmin):
    """Context budgets and what each briefing actually used, per run."""

    list_display = ["created_at", "subtask", "run", "role", "tokens", "budget", "trimmed"]
    list_filter = ["role", "workspace"]
    raw_id_fields = ["subtask", "run", "profile"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what happened
