"""Members, invites, project roles and agent tokens under /api/v1/workspaces/<code>/, for admins.

The workspace is the one in the URL, checked against the caller (outsiders 404, members
without admin 403); a workspace or owner in a request body is ignored. Raw keys and invite
links appear once, in the response that creates them.
"""

from __future__ import annotations

from django.urls import path, reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import AgentRole, ApiToken, Invite, Membership, Role, Workspace
from accounts.permissions import Action, Principal, can, principal_from_request, visible_workspaces


class ProjectRoleSerializer(serializers.Serializer):
    project = serializers.UUIDField(source="project.code", read_only=True)
    role = serializers.CharField(read_only=True)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]
        read_only_fields = fields


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ProjectRoleSetSerializer(serializers.Serializer):
    project = serializers.UUIDField(help_text="the project's id")
    role = serializers.ChoiceField(
        choices=Role.choices, allow_null=True, help_text="null: back to the workspace role"
    )


class InviteSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)

    class Meta:
        model = Invite
        fields = ["id", "email", "role", "created_at", "expires_at"]
        read_only_fields = fields


class InviteCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class InviteCreatedSerializer(InviteSerializer):
    link = serializers.CharField(read_only=True, help_text="shown once")

    class Meta(InviteSerializer.Meta):
        fields = [*InviteSerializer.Meta.fields, "link"]
        read_only_fields = fields


class TokenSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    role = serializers.CharField(source="agent_role", read_only=True)
    project = serializers.UUIDField(source="project.code", read_only=True, allow_null=True)

    class Meta:
        model = ApiToken
        fields = [
            "id", "name", "prefix", "role", "project", "created_at", "last_used_at", "revoked_at",
        ]  # fmt: skip
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    role = serializers.ChoiceField(choices=AgentRole.choices)
    project = serializers.UUIDField(required=False, allow_null=True)


class TokenCreatedSerializer(TokenSerializer):
    key = serializers.CharField(read_only=True, help_text="shown once; stored hashed")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


def _admin_scope(request, code) -> tuple[Principal, Workspace]:
    principal = principal_from_request(request)
    workspace = visible_workspaces(principal).filter(code=code).first()
    if workspace is None:
        raise NotFound("no such workspace")
    if not can(principal, Action.ADMIN, workspace):
        raise PermissionDenied("only admins of this workspace manage members and tokens")
    return principal, workspace


def _project(workspace: Workspace, code):
    found = selectors.projects(workspace).filter(code=code).first()
    if found is None:
        raise NotFound("no such project in this workspace")
    return found


class MemberList(APIView):
    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request, code):
        _, workspace = _admin_scope(request, code)
        return Response(MemberSerializer(selectors.members(workspace), many=True).data)


class MemberDetail(APIView):
    def _membership(self, workspace, pk) -> Membership:
        found = selectors.members(workspace).filter(pk=pk).first()
        if found is None:
            raise NotFound("no such member in this workspace")
        return found

    @extend_schema(request=RoleSerializer, responses=MemberSerializer)
    def patch(self, request, code, pk):
        principal, workspace = _admin_scope(request, code)
        data = RoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_role_change(
            membership=self._membership(workspace, pk),
            role=data.validated_data["role"],
            actor=principal.label,
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="removed")})
    def delete(self, request, code, pk):
        principal, workspace = _admin_scope(request, code)
        services.member_remove(membership=self._membership(workspace, pk), actor=principal.label)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberProjectRole(APIView):
    @extend_schema(request=ProjectRoleSetSerializer, responses=ProjectRoleSerializer(many=True))
    def post(self, request, code, pk):
        principal, workspace = _admin_scope(request, code)
        data = ProjectRoleSetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = MemberDetail()._membership(workspace, pk)
        services.project_role_set(
            project=_project(workspace, data.validated_data["project"]),
            user=membership.user,
            role=data.validated_data["role"],
            actor=principal.label,
        )
        overrides = selectors.project_roles(workspace).filter(user=membership.user)
        return Response(ProjectRoleSerializer(overrides, many=True).data)


class InviteList(APIView):
    @extend_schema(responses=InviteSerializer(many=True))
    def get(self, request, code):
        _, workspace = _admin_scope(request, code)
        return Response(InviteSerializer(selectors.pending_invites(workspace), many=True).data)

    @extend_schema(request=InviteCreateSerializer, responses={201: InviteCreatedSerializer})
    def post(self, request, code):
        principal, workspace = _admin_scope(request, code)
        data = InviteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invite, token = services.member_invite(
            workspace=workspace,
            email=data.validated_data["email"],
            role=data.validated_data["role"],
            invited_by=principal.user,
            actor=principal.label,
        )
        invite.link = request.build_absolute_uri(reverse("accounts:invite", args=[token]))
        return Response(InviteCreatedSerializer(invite).data, status=status.HTTP_201_CREATED)


class InviteDetail(APIView):
    @extend_schema(request=None, responses={204: OpenApiResponse(description="withdrawn")})
    def delete(self, request, code, invite):
        principal, workspace = _admin_scope(request, code)
        found = Invite.objects.filter(workspace=workspace, code=invite).first()
        if found is None:
            raise NotFound("no such invite in this workspace")
        services.invite_revoke(invite=found, actor=principal.label)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenList(APIView):
    @extend_schema(responses=TokenSerializer(many=True))
    def get(self, request, code):
        _, workspace = _admin_scope(request, code)
        tokens = selectors.agent_tokens(workspace)[: selectors.TOKEN_LIST_LIMIT]
        return Response(TokenSerializer(tokens, many=True).data)

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenCreatedSerializer})
    def post(self, request, code):
        principal, workspace = _admin_scope(request, code)
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project_code = data.validated_data.get("project")
        token, raw = services.token_create_for_agent(
            workspace=workspace,
            role=data.validated_data["role"],
            name=data.validated_data["name"],
            project=_project(workspace, project_code) if project_code else None,
            created_by=principal.user,
            actor=principal.label,
        )
        token.key = raw
        return Response(TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetail(APIView):
    @extend_schema(request=None, responses={204: OpenApiResponse(description="revoked")})
    def delete(self, request, code, token):
        principal, workspace = _admin_scope(request, code)
        found = selectors.agent_tokens(workspace).filter(code=token).first()
        if found is None:
            raise NotFound("no such token in this workspace")
        services.token_revoke(token=found, actor=principal.label)
        return Response(status=status.HTTP_204_NO_CONTENT)


W = "workspaces/<uuid:code>/"

urlpatterns = [
    path(W + "members/", MemberList.as_view(), name="workspace-members"),
    path(W + "members/<int:pk>/", MemberDetail.as_view(), name="workspace-member"),
    path(
        W + "members/<int:pk>/project-roles/",
        MemberProjectRole.as_view(),
        name="workspace-member-project-roles",
    ),
    path(W + "invites/", InviteList.as_view(), name="workspace-invites"),
    path(W + "invites/<uuid:invite>/", InviteDetail.as_view(), name="workspace-invite"),
    path(W + "tokens/", TokenList.as_view(), name="workspace-tokens"),
    path(W + "tokens/<uuid:token>/", TokenDetail.as_view(), name="workspace-token"),
]
