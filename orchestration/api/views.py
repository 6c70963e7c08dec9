"""The REST API: thin viewsets that scope by workspace and call the services."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from accounts.permissions import Action, can, principal_from_request, scope, visible_workspaces
from orchestration.api import filters, serializers
from orchestration.api.permissions import WorkspaceRole
from orchestration.models import (
    AgentProfile,
    AgentRun,
    Event,
    FeatureRequest,
    Project,
    PromptProposal,
    Subtask,
    SubtaskDependency,
    TestRun,
)
from orchestration.services import dependencies, planning, proposals, runs, transitions, work

REVIEW_TRANSITIONS = frozenset({"complete", "request_changes"})


class Newest(CursorPagination):
    ordering = "-created_at"


class NewestId(CursorPagination):
    ordering = "-id"


class ScopedViewSet(viewsets.GenericViewSet):
    """Limits every queryset to the caller's workspaces and checks the role per object."""

    permission_classes = [WorkspaceRole]
    lookup_field = "code"
    lookup_value_regex = "[0-9a-f-]{36}"
    pagination_class = Newest
    action_permissions: dict[str, Action] = {}

    @property
    def principal(self):
        return principal_from_request(self.request)

    def scoped(self, queryset):
        return scope(self.principal, queryset)

    def require(self, action_: Action, obj) -> None:
        if not can(self.principal, action_, obj):
            raise PermissionDenied(WorkspaceRole.message)

    def scoped_object(self, model, code):
        """An object of the caller's workspaces by code, or 404 (never revealing others')."""
        return get_object_or_404(self.scoped(model.objects.all()), code=code)


class WorkspaceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = serializers.WorkspaceSerializer
    pagination_class = Newest

    def get_queryset(self):
        return visible_workspaces(self.principal).order_by("name")

    @extend_schema(
        request=serializers.ProjectSerializer, responses={201: serializers.ProjectSerializer}
    )
    @action(detail=True, methods=["post"])
    def projects(self, request, code=None):
        workspace = self.get_object()
        self.require(Action.EDIT, workspace)
        data = serializers.ProjectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = work.project_create(
            workspace=workspace, actor=self.principal.label, **data.validated_data
        )
        return Response(serializers.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    ScopedViewSet,
):
    serializer_class = serializers.ProjectSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return self.scoped(Project.objects.select_related("workspace"))

    def perform_update(self, serializer) -> None:
        changes = serializer.validated_data
        # Retries, budgets and merge mode are an admin's to change (and audited).
        if "policy" in changes and changes["policy"] != serializer.instance.policy:
            self.require(Action.ADMIN, serializer.instance)
        work.project_update(
            project=serializer.instance, changes=changes, actor=self.principal.label
        )

    @extend_schema(
        request=serializers.FeatureSerializer, responses={201: serializers.FeatureSerializer}
    )
    @action(detail=True, methods=["post"])
    def features(self, request, code=None):
        project = self.get_object()
        data = serializers.FeatureSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        feature = planning.feature_request(
            project=project,
            title=data.validated_data["title"],
            description=data.validated_data.get("description", ""),
            actor=self.principal.label,
            created_by=self.principal.user,
        )
        return Response(serializers.FeatureSerializer(feature).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.SubtaskCreateSerializer, responses={201: serializers.SubtaskSerializer}
    )
    @action(detail=True, methods=["post"])
    def subtasks(self, request, code=None):
        project = self.get_object()
        data = serializers.SubtaskCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        feature_code = fields.pop("feature", None)
        if feature_code:
            feature = FeatureRequest.objects.filter(project=project, code=feature_code).first()
            if feature is None:
                raise ValidationError({"feature": ["no such feature in this project"]})
            fields["feature"] = feature
        subtask = work.subtask_create(project=project, actor=self.principal.label, **fields)
        return Response(serializers.SubtaskSerializer(subtask).data, status=status.HTTP_201_CREATED)


class FeatureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = serializers.FeatureSerializer
    filterset_class = filters.FeatureFilter

    def get_queryset(self):
        return self.scoped(FeatureRequest.objects.select_related("project"))

    @extend_schema(request=None, responses={200: serializers.FeatureSerializer})
    @action(detail=True, methods=["post"], url_path=r"transitions/(?P<name>[a-z_]+)")
    def transition(self, request, code=None, name=None):
        feature = self.get_object()
        feature = transitions.feature_transition(
            feature=feature, name=name, actor=self.principal.label
        )
        return Response(serializers.FeatureSerializer(feature).data)


class SubtaskViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    ScopedViewSet,
):
    serializer_class = serializers.SubtaskSerializer
    filterset_class = filters.SubtaskFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return self.scoped(Subtask.objects.select_related("project", "feature"))

    @extend_schema(
        request=serializers.TransitionSerializer,
        responses={
            200: serializers.SubtaskSerializer,
            409: OpenApiResponse(description="refused; the body lists the allowed transitions"),
        },
    )
    @action(detail=True, methods=["post"], url_path=r"transitions/(?P<name>[a-z_]+)")
    def transition(self, request, code=None, name=None):
        subtask = self.get_object()
        self.require(Action.REVIEW if name in REVIEW_TRANSITIONS else Action.EDIT, subtask)
        data = serializers.TransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subtask = transitions.subtask_transition(
            subtask=subtask,
            name=name,
            actor=self.principal.label,
            reason=data.validated_data["reason"],
            principal=self.principal,
        )
        return Response(serializers.SubtaskSerializer(subtask).data)

    # The transition action checks EDIT or REVIEW itself, by transition name.
    action_permissions = {"transition": Action.VIEW}

    @extend_schema(
        request=serializers.ReassignSerializer, responses={200: serializers.SubtaskSerializer}
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request, code=None):
        subtask = self.get_object()
        data = serializers.ReassignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = None
        if data.validated_data.get("profile"):
            profile = get_object_or_404(
                AgentProfile, workspace_id=subtask.workspace_id, code=data.validated_data["profile"]
            )
        subtask = work.subtask_reassign(
            subtask=subtask, profile=profile, actor=self.principal.label
        )
        return Response(serializers.SubtaskSerializer(subtask).data)


class DependencyViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    serializer_class = serializers.DependencySerializer
    lookup_field = "pk"
    lookup_value_regex = "[0-9]+"
    pagination_class = NewestId
    filterset_class = filters.DependencyFilter

    def get_queryset(self):
        return SubtaskDependency.objects.select_related("subtask", "depends_on").filter(
            subtask__workspace__in=visible_workspaces(self.principal)
        )

    def check_object_permissions(self, request, obj):
        self.require(Action.EDIT, obj.subtask)

    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        subtask = self.scoped_object(Subtask, data.validated_data["subtask"]["code"])
        depends_on = self.scoped_object(Subtask, data.validated_data["depends_on"]["code"])
        self.require(Action.EDIT, subtask)
        edge = dependencies.dependency_add(
            subtask=subtask, depends_on=depends_on, actor=self.principal.label
        )
        return Response(self.get_serializer(edge).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        dependencies.dependency_remove(edge=instance, actor=self.principal.label)


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = serializers.EventSerializer
    filterset_class = filters.EventFilter
    pagination_class = NewestId
    lookup_field = "pk"
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(Event.objects.select_related("subtask", "run"))


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = serializers.RunSerializer
    filterset_class = filters.RunFilter
    action_permissions = {
        "heartbeat": Action.WORK,
        "complete": Action.WORK,
        "fail": Action.WORK,
        "create": Action.EDIT,
    }

    def get_queryset(self):
        return self.scoped(AgentRun.objects.select_related("project", "subtask", "feature"))

    @extend_schema(
        request=serializers.RunCreateSerializer, responses={201: serializers.RunSerializer}
    )
    def create(self, request):
        data = serializers.RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subtask = self.scoped_object(Subtask, data.validated_data["subtask"])
        self.require(Action.EDIT, subtask)
        step = data.validated_data["step"]
        run = work.run_enqueue(
            project=subtask.project,
            subtask=subtask,
            role="tester" if step == "tests" else "developer",
            step=step,
            actor=self.principal.label,
            briefing=data.validated_data["briefing"],
        )
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.ClaimSerializer,
        responses={
            200: serializers.ClaimedRunSerializer,
            204: OpenApiResponse(description="no work"),
        },
    )
    @action(detail=False, methods=["post"])
    def claim(self, request):
        claim = serializers.claim_request(request.data)
        workspace_id, role = self._claim_scope(claim)
        principal = self.principal
        run = runs.run_claim(
            workspace_id=workspace_id,
            role=role,
            claimer=runs.Claimer(name=principal.label, token_id=getattr(request.auth, "pk", None)),
            lease_seconds=claim.get("lease_seconds"),
            # A token limited to one project claims only that project's runs.
            project_id=principal.project_limit,
        )
        if run is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(serializers.claimed_run_data(run))

    def _claim_scope(self, data) -> tuple[int, str]:
        """The workspace id and role a claim draws from: the agent token's own, or — for a
        member with the right — the ones named in the request."""
        principal = self.principal
        if principal.is_agent:
            token = principal.token
            if data.get("role") and data["role"] != token.agent_role:
                raise PermissionDenied(
                    f"this token works as {token.agent_role}, not {data['role']}"
                )
            return token.workspace_id, token.agent_role
        if not data.get("workspace") or not data.get("role"):
            raise ValidationError({"workspace": ["required for personal tokens, with role"]})
        workspace = get_object_or_404(visible_workspaces(principal), code=data["workspace"])
        self.require(Action.WORK, workspace)
        return workspace.pk, data["role"]

    @extend_schema(request=serializers.LeaseSerializer, responses={200: serializers.RunSerializer})
    @action(detail=True, methods=["post"])
    def heartbeat(self, request, code=None):
        run = self.get_object()
        data = serializers.LeaseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = runs.run_heartbeat(
            run=run,
            lease_id=data.validated_data["lease_id"],
            lease_seconds=data.validated_data.get("lease_seconds"),
        )
        return Response(serializers.RunSerializer(run).data)

    @extend_schema(
        request=serializers.CompleteSerializer, responses={200: serializers.RunSerializer}
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, code=None):
        run = self.get_object()
        data = serializers.CompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = runs.run_complete(run=run, actor=self.principal.label, **data.validated_data)
        if run.status == "failed":  # a plan whose manifest did not validate
            body = {"detail": run.error, "code": "invalid_result", "run": str(run.code)}
            return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        return Response(serializers.RunSerializer(run).data)

    @extend_schema(request=None, responses={200: serializers.RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, code=None):
        run = self.get_object()
        self.require(Action.EDIT, run)
        run = runs.run_cancel(run=run, actor=self.principal.label)
        return Response(serializers.RunSerializer(run).data)

    @extend_schema(request=serializers.FailSerializer, responses={200: serializers.RunSerializer})
    @action(detail=True, methods=["post"])
    def fail(self, request, code=None):
        run = self.get_object()
        data = serializers.FailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = runs.run_fail(run=run, actor=self.principal.label, **data.validated_data)
        return Response(serializers.RunSerializer(run).data)


class AgentProfileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Agent profiles with their circuit breaker's state."""

    serializer_class = serializers.AgentProfileSerializer

    def get_queryset(self):
        return self.scoped(AgentProfile.objects.all())


class TestRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Test runs with every case (detail) and coverage; filter by subtask."""

    filterset_class = filters.TestRunFilter

    def get_queryset(self):
        queryset = self.scoped(TestRun.objects.select_related("subtask"))
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("cases", "coverage_files")
        return queryset

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.TestRunDetailSerializer
        return serializers.TestRunSerializer


class PromptProposalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The prompt engineer's proposals; workspace admins apply or reject them."""

    serializer_class = serializers.PromptProposalSerializer
    action_permissions = {"apply": Action.ADMIN, "reject": Action.ADMIN}

    def get_queryset(self):
        return self.scoped(PromptProposal.objects.select_related("profile", "subtask"))

    @extend_schema(request=None, responses={200: serializers.PromptProposalSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request, code=None):
        return self._decide(apply=True)

    @extend_schema(request=None, responses={200: serializers.PromptProposalSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, code=None):
        return self._decide(apply=False)

    def _decide(self, *, apply: bool) -> Response:
        proposal = proposals.proposal_decide(
            proposal=self.get_object(), apply=apply, actor=self.principal.label
        )
        return Response(serializers.PromptProposalSerializer(proposal).data)
