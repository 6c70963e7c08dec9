"""The secrets API under /api/v1/workspaces/<code>/secrets/: write-only, for admins.

Values go in and never come out: every response shows `******`. The workspace is the
one in the URL, checked against the caller (outsiders 404, members without admin 403);
a `workspace` in a request body is ignored.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import secrets
from accounts.models import Environment, Secret, Workspace
from accounts.permissions import Action, Principal, can, principal_from_request, visible_workspaces
from accounts.scrubbing import MASK


class GrantedProfileSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="code", read_only=True)
    name = serializers.CharField(read_only=True)


class SecretSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    value = serializers.SerializerMethodField()
    granted_to = GrantedProfileSerializer(many=True, read_only=True)

    class Meta:
        model = Secret
        fields = ["id", "name", "environment", "value", "granted_to", "created_at", "updated_at"]
        read_only_fields = fields

    def get_value(self, secret: Secret) -> str:
        return MASK


class SecretCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    environment = serializers.ChoiceField(choices=Environment.choices)
    value = serializers.CharField(
        write_only=True, trim_whitespace=False, max_length=secrets.MAX_VALUE_LENGTH
    )


class SecretValueSerializer(serializers.Serializer):
    value = serializers.CharField(
        write_only=True, trim_whitespace=False, max_length=secrets.MAX_VALUE_LENGTH
    )


class GrantSerializer(serializers.Serializer):
    profile = serializers.UUIDField(help_text="the agent profile's id")


def _admin_scope(request, code) -> tuple[Principal, Workspace]:
    principal = principal_from_request(request)
    workspace = visible_workspaces(principal).filter(code=code).first()
    if workspace is None:
        raise NotFound("no such workspace")
    if not can(principal, Action.ADMIN, workspace.pk):
        raise PermissionDenied("only workspace admins manage secrets")
    return principal, workspace


def _refused(error: secrets.SecretError) -> Response:
    return Response({"detail": str(error)}, status=error.status)


def _one(workspace: Workspace, code) -> Secret:
    try:
        return secrets.secrets_of(workspace).get(code=code)
    except Secret.DoesNotExist:
        raise NotFound("no such secret in this workspace") from None


class SecretListView(APIView):
    serializer_class = SecretSerializer

    @extend_schema(responses=SecretSerializer(many=True))
    def get(self, request, code):
        _, workspace = _admin_scope(request, code)
        return Response(SecretSerializer(secrets.secrets_of(workspace), many=True).data)

    @extend_schema(
        request=SecretCreateSerializer,
        responses={201: SecretSerializer, 409: OpenApiResponse(description="already set")},
    )
    def post(self, request, code):
        principal, workspace = _admin_scope(request, code)
        data = SecretCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            secret = secrets.secret_create(
                workspace=workspace, actor=principal.label, **data.validated_data
            )
        except secrets.SecretError as error:
            return _refused(error)
        body = SecretSerializer(_one(workspace, secret.code)).data
        return Response(body, status=status.HTTP_201_CREATED)


class SecretDetailView(APIView):
    serializer_class = SecretSerializer

    @extend_schema(responses=SecretSerializer)
    def get(self, request, code, secret):
        _, workspace = _admin_scope(request, code)
        return Response(SecretSerializer(_one(workspace, secret)).data)

    @extend_schema(request=SecretValueSerializer, responses=SecretSerializer)
    def put(self, request, code, secret):
        principal, workspace = _admin_scope(request, code)
        target = _one(workspace, secret)
        data = SecretValueSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            secrets.secret_update(
                secret=target, value=data.validated_data["value"], actor=principal.label
            )
        except secrets.SecretError as error:
            return _refused(error)
        return Response(SecretSerializer(_one(workspace, secret)).data)

    @extend_schema(request=SecretValueSerializer, responses=SecretSerializer)
    def patch(self, request, code, secret):
        return self.put(request, code, secret)

    @extend_schema(responses={204: None})
    def delete(self, request, code, secret):
        principal, workspace = _admin_scope(request, code)
        try:
            secrets.secret_delete(secret=_one(workspace, secret), actor=principal.label)
        except secrets.SecretError as error:
            return _refused(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecretGrantsView(APIView):
    serializer_class = GrantSerializer

    @extend_schema(
        request=GrantSerializer,
        responses={201: SecretSerializer, 200: SecretSerializer},
        description="Grant this secret (its environment's value) to an agent profile.",
    )
    def post(self, request, code, secret):
        principal, workspace = _admin_scope(request, code)
        target = _one(workspace, secret)
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            profile = secrets.profile_get(workspace, data.validated_data["profile"])
            created = secrets.secret_grant(secret=target, profile=profile, actor=principal.label)
        except secrets.SecretError as error:
            return _refused(error)
        body = SecretSerializer(_one(workspace, secret)).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SecretGrantView(APIView):
    serializer_class = SecretSerializer

    @extend_schema(responses={204: None})
    def delete(self, request, code, secret, profile):
        principal, workspace = _admin_scope(request, code)
        target = _one(workspace, secret)
        try:
            grantee = secrets.profile_get(workspace, profile)
            removed = secrets.secret_ungrant(secret=target, profile=grantee, actor=principal.label)
        except secrets.SecretError as error:
            return _refused(error)
        if not removed:
            raise NotFound("this profile is not granted this secret")
        return Response(status=status.HTTP_204_NO_CONTENT)


S = "workspaces/<uuid:code>/secrets/"

urlpatterns = [
    path(S, SecretListView.as_view(), name="api-secrets"),
    path(S + "<uuid:secret>/", SecretDetailView.as_view(), name="api-secret"),
    path(S + "<uuid:secret>/grants/", SecretGrantsView.as_view(), name="api-secret-grants"),
    path(
        S + "<uuid:secret>/grants/<uuid:profile>/",
        SecretGrantView.as_view(),
        name="api-secret-grant",
    ),
]
