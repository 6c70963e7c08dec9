"""REST API of the review: change sets, revisions, threads and approvals (under /api/v1/)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts.permissions import Action, visible_workspaces
from orchestration.api.views import ScopedViewSet
from review import selectors
from review.markdown import render_markdown
from review.models import Approval, ChangeSet, ReviewComment, Revision, Side
from review.services import approvals, changesets, comments
from review.tasks import merge_changeset


class RevisionSerializer(serializers.ModelSerializer):
    created_by_run = serializers.UUIDField(source="created_by_run.code", allow_null=True)

    class Meta:
        model = Revision
        fields = [
            "number", "base_sha", "head_sha", "files_changed", "additions", "deletions",
            "pushed_by", "created_by_run", "attempt", "created_at",
        ]  # fmt: skip


class RevisionDetailSerializer(RevisionSerializer):
    class Meta(RevisionSerializer.Meta):
        fields = [*RevisionSerializer.Meta.fields, "files"]


# States and kinds are plain strings in the schema: their names ("status", "state", "kind")
# are taken by other enums of the API, and a collision makes drf-spectacular warn.
class ApprovalSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    kind = serializers.CharField(read_only=True, help_text="plan or merge")
    state = serializers.CharField(
        read_only=True, help_text="pending, approved, changes_requested or dismissed"
    )
    revision = serializers.IntegerField(source="revision.number", allow_null=True)
    subtask = serializers.UUIDField(source="subtask.code", allow_null=True)

    class Meta:
        model = Approval
        fields = [
            "id", "kind", "state", "risk", "revision", "head_sha", "subtask", "auto",
            "decided_by_label", "decided_at", "note", "created_at",
        ]  # fmt: skip


class ChangeSetSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    status = serializers.CharField(read_only=True, help_text="open, conflicted or merged")
    feature = serializers.UUIDField(source="feature.code")
    project = serializers.UUIDField(source="project.code")

    class Meta:
        model = ChangeSet
        fields = [
            "id", "feature", "project", "branch", "base_branch", "base_sha", "head_sha",
            "status", "risk", "risk_reasons", "conflict_files", "merge_note", "merged_sha",
            "merged_at", "created_at", "updated_at",
        ]  # fmt: skip


class ChangeSetDetailSerializer(ChangeSetSerializer):
    revisions = RevisionSerializer(many=True)
    approvals = serializers.SerializerMethodField()
    latest = serializers.SerializerMethodField()

    class Meta(ChangeSetSerializer.Meta):
        fields = [*ChangeSetSerializer.Meta.fields, "revisions", "approvals", "latest"]

    def get_approvals(self, obj) -> list[dict]:
        return ApprovalSerializer(selectors.approvals_of(obj), many=True).data

    def get_latest(self, obj) -> dict | None:
        revision = obj.revisions.order_by("-number").first()
        return RevisionDetailSerializer(revision).data if revision else None


class ReplySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    body_html = serializers.SerializerMethodField()

    class Meta:
        model = ReviewComment
        fields = ["id", "body", "body_html", "author_label", "created_at"]

    def get_body_html(self, obj) -> str:
        return render_markdown(obj.body)


class CommentSerializer(ReplySerializer):
    revision = serializers.IntegerField(source="revision.number")
    side = serializers.CharField(read_only=True, help_text="old or new")
    state = serializers.CharField(read_only=True, help_text="open, resolved or dropped")
    replies = ReplySerializer(many=True)
    addressed_by_run = serializers.UUIDField(source="addressed_by_run.code", allow_null=True)

    class Meta(ReplySerializer.Meta):
        fields = [
            *ReplySerializer.Meta.fields, "revision", "path", "side", "first_line",
            "line_count", "state", "replies", "addressed_by_run", "addressed_attempt",
        ]  # fmt: skip


class CommentCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=comments.MAX_BODY)
    path = serializers.CharField(required=False, allow_blank=True, default="")
    side = serializers.RegexField(r"^(old|new)$", default=Side.NEW, help_text="old or new")
    first_line = serializers.IntegerField(min_value=1, required=False, default=0)
    line_count = serializers.IntegerField(min_value=1, default=1)
    revision = serializers.IntegerField(required=False, allow_null=True, default=None)
    parent = serializers.UUIDField(required=False, allow_null=True, default=None)


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ChangeSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Change sets with their revisions, risk and reasons, and approvals."""

    action_permissions = {"comments": Action.VIEW, "merge": Action.REVIEW, "refresh": Action.VIEW}

    def get_queryset(self):
        return self.scoped(ChangeSet.objects.select_related("feature", "project"))

    def get_serializer_class(self):
        return ChangeSetDetailSerializer if self.action == "retrieve" else ChangeSetSerializer

    @extend_schema(methods=["GET"], responses={200: CommentSerializer(many=True)})
    @extend_schema(
        methods=["POST"], request=CommentCreateSerializer, responses={201: CommentSerializer}
    )
    # The threads come whole, not in pages: the schema must not describe a paginated list.
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def comments(self, request, code=None):
        changeset = self.get_object()
        if request.method == "GET":
            threads = selectors.thread_queryset().filter(changeset=changeset, parent__isnull=True)
            return Response(CommentSerializer(threads, many=True).data)
        data = CommentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        parent_code = values.pop("parent")
        parent = None
        if parent_code:
            parent = get_object_or_404(ReviewComment, changeset=changeset, code=parent_code)
        comment = comments.comment_add(
            changeset=changeset,
            principal=self.principal,
            parent=parent,
            revision_number=values.pop("revision"),
            **values,
        )
        thread = selectors.thread_queryset().get(pk=comment.parent_id or comment.pk)
        return Response(CommentSerializer(thread).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def merge(self, request, code=None):
        changeset = self.get_object()
        merge_changeset.delay(changeset.pk)
        return Response({"detail": "merge requested"}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: ChangeSetDetailSerializer})
    @action(detail=True, methods=["post"])
    def refresh(self, request, code=None):
        changeset = self.get_object()
        if not comments.may_comment(self.principal, changeset):
            raise PermissionDenied("only authors, reviewers and admins refresh a change set")
        changesets.changeset_refresh(feature=changeset.feature, actor=self.principal.label)
        changeset.refresh_from_db()
        return Response(ChangeSetDetailSerializer(changeset).data)


class CommentViewSet(mixins.RetrieveModelMixin, ScopedViewSet):
    """One thread; resolve, drop or reopen it."""

    serializer_class = CommentSerializer
    action_permissions = {"transition": Action.VIEW}  # the service checks author or reviewer

    def get_queryset(self):
        return selectors.thread_queryset().filter(
            changeset__workspace__in=visible_workspaces(self.principal)
        )

    def check_object_permissions(self, request, obj):
        self.require(Action.VIEW, obj.changeset)

    @extend_schema(request=None, responses={200: CommentSerializer})
    @action(detail=True, methods=["post"], url_path=r"transitions/(?P<name>[a-z_]+)")
    def transition(self, request, code=None, name=None):
        comment = self.get_object()
        comments.comment_transition(comment=comment, name=name, principal=self.principal)
        thread = selectors.thread_queryset().get(pk=comment.pk)
        return Response(CommentSerializer(thread).data)


class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Gates: list (filter ?state=pending), approve, request changes."""

    serializer_class = ApprovalSerializer
    # Deciding is checked by the service (reviewers only, never agents, not the filer).
    action_permissions = {"approve": Action.VIEW, "request_changes": Action.VIEW}

    def get_queryset(self):
        queryset = self.scoped(Approval.objects.select_related("revision", "subtask"))
        state = self.request.query_params.get("state")
        return queryset.filter(state=state) if state else queryset

    def _decide(self, request, decision: str):
        approval = self.get_object()
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        approval = approvals.approval_decide(
            approval=approval,
            principal=self.principal,
            decision=decision,
            note=data.validated_data["note"],
        )
        return Response(ApprovalSerializer(approval).data)

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, code=None):
        return self._decide(request, "approve")

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"], url_path="request-changes")
    def request_changes(self, request, code=None):
        return self._decide(request, "request_changes")
