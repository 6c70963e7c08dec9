"""API representations. Objects are addressed by UUID `code`s, exposed as `id`."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import AgentRole, Workspace
from orchestration.models import (
    AgentProfile,
    AgentRun,
    CoverageFile,
    Event,
    FeatureRequest,
    Project,
    PromptProposal,
    Risk,
    RunStep,
    Subtask,
    SubtaskDependency,
    TestCaseResult,
    TestRun,
)
from orchestration.models.subtasks import allowed_transitions


class WorkspaceSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "created_at"]


class ProjectSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    workspace = serializers.UUIDField(source="workspace.code", read_only=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "workspace",
            "name",
            "slug",
            "repo_path",
            "repo_url",
            "default_branch",
            "test_command",
            "policy",
            "created_at",
        ]
        read_only_fields = ["slug", "created_at"]

    def validate_policy(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("policy must be an object")
        attempts = value.get("max_attempts", 3)
        if not isinstance(attempts, int) or not 1 <= attempts <= 20:
            raise serializers.ValidationError("max_attempts must be an integer from 1 to 20")
        return value


class FeatureSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    project = serializers.UUIDField(source="project.code", read_only=True)
    branch = serializers.CharField(read_only=True)

    class Meta:
        model = FeatureRequest
        fields = [
            "id",
            "project",
            "title",
            "description",
            "slug",
            "branch",
            "status",
            "frd",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["slug", "status", "frd", "created_at", "updated_at"]


class SubtaskSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    project = serializers.UUIDField(source="project.code", read_only=True)
    feature = serializers.UUIDField(source="feature.code", read_only=True, allow_null=True)
    allowed_transitions = serializers.SerializerMethodField()

    class Meta:
        model = Subtask
        fields = [
            "id",
            "project",
            "feature",
            "key",
            "title",
            "description",
            "requirements_developer",
            "requirements_tester",
            "owner_role",
            "risk",
            "status",
            "stage",
            "attempts",
            "estimate_hours",
            "blocked_reason",
            "allowed_transitions",
            "created_at",
            "updated_at",
            "status_changed_at",
        ]
        read_only_fields = [
            "status",
            "stage",
            "attempts",
            "blocked_reason",
            "created_at",
            "updated_at",
            "status_changed_at",
        ]

    def get_allowed_transitions(self, obj: Subtask) -> list[str]:
        return allowed_transitions(obj.status)


class SubtaskCreateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=60)
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    requirements_developer = serializers.CharField(required=False, allow_blank=True, default="")
    requirements_tester = serializers.CharField(required=False, allow_blank=True, default="")
    owner_role = serializers.ChoiceField(choices=AgentRole.choices, default=AgentRole.DEVELOPER)
    risk = serializers.ChoiceField(choices=Risk.choices, default=Risk.LOW)
    estimate_hours = serializers.DecimalField(
        max_digits=7, decimal_places=2, required=False, allow_null=True, min_value=0
    )
    feature = serializers.UUIDField(required=False, allow_null=True)


class TransitionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class DependencySerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(read_only=True)
    subtask = serializers.UUIDField(source="subtask.code")
    depends_on = serializers.UUIDField(source="depends_on.code")
    subtask_key = serializers.CharField(source="subtask.key", read_only=True)
    depends_on_key = serializers.CharField(source="depends_on.key", read_only=True)

    class Meta:
        model = SubtaskDependency
        fields = ["id", "subtask", "depends_on", "subtask_key", "depends_on_key", "created_at"]
        read_only_fields = ["created_at"]


class EventSerializer(serializers.ModelSerializer):
    subtask = serializers.UUIDField(source="subtask.code", read_only=True, allow_null=True)
    run = serializers.UUIDField(source="run.code", read_only=True, allow_null=True)

    class Meta:
        model = Event
        fields = ["id", "kind", "actor", "message", "data", "subtask", "run", "created_at"]


class RunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    project = serializers.UUIDField(source="project.code", read_only=True)
    subtask = serializers.UUIDField(source="subtask.code", read_only=True, allow_null=True)
    feature = serializers.UUIDField(source="feature.code", read_only=True, allow_null=True)

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "project",
            "feature",
            "subtask",
            "role",
            "step",
            "status",
            "attempt",
            "available_at",
            "claimed_by",
            "claimed_at",
            "heartbeat_at",
            "lease_expires_at",
            "finished_at",
            "briefing",
            "output",
            "result",
            "error",
            "tokens_in",
            "tokens_out",
            "cost",
            "created_at",
        ]
        read_only_fields = fields


class ClaimedRunSerializer(RunSerializer):
    """What the claimer gets: the run and the lease id it must present from now on."""

    lease_id = serializers.UUIDField(read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "lease_id"]
        read_only_fields = fields


_claimed_run_serializer: ClaimedRunSerializer | None = None


def claimed_run_data(run: AgentRun) -> dict:
    """ClaimedRunSerializer's representation of a claimed run, from one serializer whose
    fields are built once per process: a ModelSerializer builds its ~25 fields anew for
    every instance, which cost more than the claim itself. Fields only read the run, so
    threads can share them."""
    global _claimed_run_serializer
    serializer = _claimed_run_serializer
    if serializer is None:
        serializer = ClaimedRunSerializer()
        serializer.fields  # noqa: B018 (builds and caches the fields before sharing)
        _claimed_run_serializer = serializer
    return serializer.to_representation(run)


class RunCreateSerializer(serializers.Serializer):
    subtask = serializers.UUIDField()
    step = serializers.ChoiceField(choices=[RunStep.TESTS, RunStep.IMPLEMENTATION])
    briefing = serializers.CharField(required=False, allow_blank=True, default="")


class ClaimSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=AgentRole.choices, required=False)
    workspace = serializers.UUIDField(required=False)
    lease_seconds = serializers.IntegerField(required=False, min_value=1)


_claim_serializer: ClaimSerializer | None = None


def claim_request(data) -> dict:
    """The validated body of a claim, or ValidationError with the field messages
    `is_valid(raise_exception=True)` gives; one ClaimSerializer's fields serve every call
    (validating reads them, never changes them) instead of being copied per request."""
    global _claim_serializer
    serializer = _claim_serializer
    if serializer is None:
        serializer = ClaimSerializer()
        serializer.fields  # noqa: B018 (builds and caches the fields before sharing)
        _claim_serializer = serializer
    try:
        return serializer.run_validation(data)
    except serializers.ValidationError as exc:
        # The shape is_valid() gives: a dict by field, a body-wide error under
        # non_field_errors.
        raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None


class LeaseSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    lease_seconds = serializers.IntegerField(required=False, min_value=1)


class CompleteSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    output = serializers.CharField(required=False, allow_blank=True, default="")
    result = serializers.JSONField(required=False, default=dict)
    tokens_in = serializers.IntegerField(required=False, min_value=0, default=0)
    tokens_out = serializers.IntegerField(required=False, min_value=0, default=0)
    cost = serializers.DecimalField(
        max_digits=10, decimal_places=4, required=False, min_value=0, default=0
    )

    def validate_result(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("result must be an object")
        return value


class FailSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    error = serializers.CharField(max_length=20000)
    failure_class = serializers.ChoiceField(
        choices=["agent", "infrastructure", "flaky", "budget"], default="agent"
    )
    output = serializers.CharField(required=False, allow_blank=True, default="")


class ReassignSerializer(serializers.Serializer):
    profile = serializers.UUIDField(allow_null=True, help_text="null: back to the role's default")


class AgentProfileSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)

    class Meta:
        model = AgentProfile
        fields = [
            "id",
            "name",
            "role",
            "executor",
            "prompt_version",
            "breaker_state",
            "consecutive_failures",
            "breaker_opened_at",
            "breaker_threshold",
            "breaker_cooldown_seconds",
        ]
        read_only_fields = fields


class TestRunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    subtask = serializers.UUIDField(source="subtask.code", read_only=True, allow_null=True)

    class Meta:
        model = TestRun
        fields = [
            "id",
            "subtask",
            "purpose",
            "status",
            "branch",
            "commit_sha",
            "total",
            "passed",
            "failed",
            "errors",
            "skipped",
            "flaky",
            "exit_code",
            "timed_out",
            "duration_seconds",
            "coverage_percent",
            "problem",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class TestCaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = TestCaseResult
        fields = ["name", "classname", "file", "outcome", "duration_seconds", "message", "flaky"]


class CoverageFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = CoverageFile
        fields = ["path", "lines_valid", "lines_covered", "line_rate"]


class TestRunDetailSerializer(TestRunSerializer):
    cases = TestCaseSerializer(many=True, read_only=True)
    coverage_files = CoverageFileSerializer(many=True, read_only=True)
    failure_context = serializers.CharField(read_only=True)

    class Meta(TestRunSerializer.Meta):
        fields = [*TestRunSerializer.Meta.fields, "failure_context", "cases", "coverage_files"]
        read_only_fields = fields


class PromptProposalSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    profile = serializers.CharField(source="profile.name", read_only=True)
    subtask = serializers.UUIDField(source="subtask.code", read_only=True, allow_null=True)

    class Meta:
        model = PromptProposal
        fields = [
            "id",
            "profile",
            "subtask",
            "base_version",
            "proposed_template",
            "rationale",
            "status",
            "decided_by",
            "decided_at",
            "created_at",
        ]
        read_only_fields = fields
