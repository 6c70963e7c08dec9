from django.contrib import admin, messages

from orchestration.errors import DomainError
from orchestration.models import (
    AgentProfile,
    AgentRun,
    CoverageFile,
    Event,
    FeatureRequest,
    FlakyTest,
    HandoffRule,
    Project,
    PromptProposal,
    Subtask,
    SubtaskDependency,
    TestCaseResult,
    TestRun,
)
from orchestration.models.subtasks import SUBTASK_TRANSITIONS
from orchestration.services import proposals, transitions, work


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "default_branch", "test_command", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "slug", "repo_path", "repo_url"]
    readonly_fields = ["code", "created_at"]

    def save_model(self, request, obj, form, change) -> None:
        # The admin's change view already runs in a transaction: the audit entry joins it.
        before = None
        if change:
            before = (
                Project.objects.select_for_update().values_list("policy", flat=True).get(pk=obj.pk)
            )
        super().save_model(request, obj, form, change)
        if change:
            work.project_policy_audit(project=obj, before=before, actor=f"user:{request.user}")


@admin.register(FeatureRequest)
class FeatureRequestAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "status", "created_by", "created_at"]
    list_filter = ["status", "workspace", "project"]
    search_fields = ["title", "description", "slug"]
    readonly_fields = ["code", "status", "created_at", "updated_at"]


class DependencyInline(admin.TabularInline):
    model = SubtaskDependency
    fk_name = "subtask"
    extra = 0
    raw_id_fields = ["depends_on"]
    readonly_fields = ["depends_on", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # edges go through the dependency service, which refuses cycles


def _transition_action(name: str):
    def act(modeladmin, request, queryset):
        done, refused = 0, []
        for subtask in queryset:
            try:
                transitions.subtask_transition(
                    subtask=subtask, name=name, actor=f"user:{request.user.username}"
                )
                done += 1
            except DomainError as exc:
                refused.append(f"{subtask.key}: {exc.message}")
        if done:
            modeladmin.message_user(request, f"{name}: {done} subtask(s) moved.", messages.SUCCESS)
        for line in refused:
            modeladmin.message_user(request, line, messages.ERROR)

    act.__name__ = f"transition_{name}"
    act.short_description = f"Transition: {name.replace('_', ' ')}"
    return act


@admin.register(Subtask)
class SubtaskAdmin(admin.ModelAdmin):
    list_display = ["key", "title", "project", "status", "stage", "owner_role", "risk", "attempts"]
    list_filter = ["status", "stage", "risk", "owner_role", "workspace", "project"]
    search_fields = ["key", "title", "description"]
    readonly_fields = [
        "code",
        "status",
        "stage",
        "attempts",
        "created_at",
        "updated_at",
        "status_changed_at",
    ]
    inlines = [DependencyInline]
    actions = [_transition_action(name) for name in SUBTASK_TRANSITIONS]


@admin.register(SubtaskDependency)
class SubtaskDependencyAdmin(admin.ModelAdmin):
    list_display = ["subtask", "depends_on", "created_at"]
    search_fields = ["subtask__key", "depends_on__key"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "executor", "prompt_version", "workspace"]
    list_filter = ["role", "executor", "workspace"]
    search_fields = ["name", "prompt_template"]
    readonly_fields = ["code", "created_at"]


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "step",
        "role",
        "status",
        "attempt",
        "subtask",
        "claimed_by",
        "created_at",
    ]
    list_filter = ["status", "role", "step", "workspace"]
    search_fields = ["code", "claimed_by", "subtask__key", "error"]
    readonly_fields = [f.name for f in AgentRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "kind", "actor", "message"]
    list_filter = ["kind", "workspace"]
    search_fields = ["message", "actor"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(HandoffRule)
class HandoffRuleAdmin(admin.ModelAdmin):
    """The handoff table per project; a project without rows uses the defaults."""

    list_display = ["project", "trigger", "action", "enabled"]
    list_filter = ["trigger", "action", "enabled", "project"]
    list_editable = ["action", "enabled"]


class CaseInline(admin.TabularInline):
    model = TestCaseResult
    extra = 0
    can_delete = False
    fields = ["classname", "name", "outcome", "duration_seconds", "message", "flaky"]
    readonly_fields = fields


class CoverageInline(admin.TabularInline):
    model = CoverageFile
    extra = 0
    can_delete = False
    readonly_fields = ["path", "lines_valid", "lines_covered", "line_rate"]


@admin.register(TestRun)
class TestRunAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "subtask",
        "purpose",
        "status",
        "passed",
        "failed",
        "errors",
        "created_at",
    ]
    list_filter = ["status", "purpose", "workspace"]
    search_fields = ["code", "subtask__key", "commit_sha", "problem"]
    readonly_fields = [f.name for f in TestRun._meta.fields]
    inlines = [CaseInline, CoverageInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(FlakyTest)
class FlakyTestAdmin(admin.ModelAdmin):
    list_display = ["classname", "name", "project", "flake_count", "last_seen_at"]
    list_filter = ["project"]
    search_fields = ["classname", "name"]


@admin.register(PromptProposal)
class PromptProposalAdmin(admin.ModelAdmin):
    list_display = ["profile", "status", "base_version", "created_at", "decided_by"]
    list_filter = ["status", "workspace"]
    readonly_fields = [f.name for f in PromptProposal._meta.fields]
    actions = ["apply_proposals", "reject_proposals"]

    def has_add_permission(self, request) -> bool:
        return False

    def _decide(self, request, queryset, apply: bool) -> None:
        for proposal in queryset:
            try:
                proposals.proposal_decide(
                    proposal=proposal, apply=apply, actor=f"user:{request.user.username}"
                )
            except DomainError as exc:
                self.message_user(request, f"{proposal}: {exc.message}", messages.ERROR)

    @admin.action(description="Apply selected proposals to their profiles")
    def apply_proposals(self, request, queryset):
        self._decide(request, queryset, apply=True)

    @admin.action(description="Reject selected proposals")
    def reject_proposals(self, request, queryset):
        self._decide(request, queryset, apply=False)
