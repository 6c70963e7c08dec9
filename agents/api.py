"""`/api/agent/`: the agents' REST API — briefings, questions, patches, results, release.

Thin views: each parses its input and calls one function of `agents.operations`, which the
MCP server calls too. Domain errors become their status through the project's exception
handler (outsiders 404, missing rights 403, a refused patch 422).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import principal_from_request
from agents import operations


class AgentClaimSerializer(serializers.Serializer):
    role = serializers.CharField(required=False, allow_null=True, default=None)
    workspace = serializers.UUIDField(required=False, allow_null=True, default=None)
    lease_seconds = serializers.IntegerField(required=False, min_value=1, allow_null=True)


class AgentHeartbeatSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    lease_seconds = serializers.IntegerField(required=False, min_value=1, allow_null=True)


class AgentPatchSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    patch = serializers.CharField(trim_whitespace=False)


class AgentResultSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    success = serializers.BooleanField()
    output = serializers.CharField(required=False, allow_blank=True, default="")
    error = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    failure_class = serializers.ChoiceField(choices=operations.FAILURE_CLASSES, default="agent")
    result = serializers.JSONField(required=False, default=dict)
    tokens_in = serializers.IntegerField(required=False, min_value=0, default=0)
    tokens_out = serializers.IntegerField(required=False, min_value=0, default=0)
    cost = serializers.DecimalField(
        max_digits=10, decimal_places=4, required=False, min_value=0, default=0
    )


class AgentReleaseSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class AgentQuestionSerializer(serializers.Serializer):
    text = serializers.CharField()
    blocks_subtask = serializers.BooleanField(required=False, default=False)
    run = serializers.UUIDField(required=False, allow_null=True)
    lease_id = serializers.UUIDField(required=False, allow_null=True)


class AgentAnswerSerializer(serializers.Serializer):
    answer = serializers.CharField()


# The answers are plain JSON objects (see agents.operations); lists of them where a view
# returns a list, so the schema says what clients and the fuzzing tests get.
OBJECT_LIST = {"type": "array", "items": {"type": "object", "additionalProperties": {}}}


def _valid(serializer_class, request: Request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _principal(request: Request):
    return principal_from_request(request)


@extend_schema(
    parameters=[
        OpenApiParameter("run", OpenApiTypes.UUID),
        OpenApiParameter("role", str),
        OpenApiParameter("budget", int),
    ],
    responses={200: dict},
)
@api_view(["GET"])
def briefing(request: Request, subtask: str) -> Response:
    budget = request.query_params.get("budget")
    body = operations.briefing_get(
        _principal(request),
        subtask_id=subtask,
        run_id=request.query_params.get("run"),
        role=request.query_params.get("role"),
        budget=int(budget) if budget and budget.isdigit() else None,
    )
    return Response(body)


@extend_schema(
    parameters=[OpenApiParameter("role", str), OpenApiParameter("workspace", OpenApiTypes.UUID)],
    responses={200: OBJECT_LIST},
)
@api_view(["GET"])
def runs(request: Request) -> Response:
    """Queued runs the caller could claim now (an agent token: its own role)."""
    return Response(
        operations.runs_list(
            _principal(request),
            role=request.query_params.get("role"),
            workspace=request.query_params.get("workspace"),
        )
    )


@extend_schema(request=AgentClaimSerializer, responses={200: dict, 204: None})
@api_view(["POST"])
def claim(request: Request) -> Response:
    """The oldest runnable run of the role, with its branch, repository and lease id."""
    data = _valid(AgentClaimSerializer, request)
    run = operations.run_claim(
        _principal(request),
        role=data["role"],
        workspace=str(data["workspace"]) if data["workspace"] else None,
        lease_seconds=data.get("lease_seconds"),
    )
    if run is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(run)


@extend_schema(request=AgentHeartbeatSerializer, responses={200: dict})
@api_view(["POST"])
def run_heartbeat(request: Request, run: str) -> Response:
    data = _valid(AgentHeartbeatSerializer, request)
    return Response(
        operations.run_heartbeat(
            _principal(request),
            run_id=run,
            lease_id=data["lease_id"],
            lease_seconds=data.get("lease_seconds"),
        )
    )


@extend_schema(responses={200: dict})
@api_view(["GET"])
def run_briefing(request: Request, run: str) -> Response:
    return Response(operations.briefing_get(_principal(request), run_id=run))


@extend_schema(responses={200: dict})
@api_view(["GET"])
def run_context(request: Request, run: str) -> Response:
    return Response(operations.run_context(_principal(request), run_id=run))


@extend_schema(request=AgentPatchSerializer, responses={201: dict})
@api_view(["POST"])
def run_patch(request: Request, run: str) -> Response:
    data = _valid(AgentPatchSerializer, request)
    published = operations.patch_submit(
        _principal(request), run_id=run, lease_id=data["lease_id"], patch=data["patch"]
    )
    return Response(published, status=status.HTTP_201_CREATED)


@extend_schema(request=AgentResultSerializer, responses={200: dict})
@api_view(["POST"])
def run_result(request: Request, run: str) -> Response:
    data = _valid(AgentResultSerializer, request)
    return Response(operations.result_report(_principal(request), run_id=run, **data))


@extend_schema(request=AgentReleaseSerializer, responses={200: dict})
@api_view(["POST"])
def run_release(request: Request, run: str) -> Response:
    data = _valid(AgentReleaseSerializer, request)
    return Response(operations.run_release(_principal(request), run_id=run, **data))


@extend_schema(methods=["GET"], responses={200: OBJECT_LIST})
@extend_schema(methods=["POST"], request=AgentQuestionSerializer, responses={201: dict})
@api_view(["GET", "POST"])
def questions(request: Request, subtask: str) -> Response:
    principal = _principal(request)
    if request.method == "GET":
        return Response(operations.questions_list(principal, subtask_id=subtask))
    data = _valid(AgentQuestionSerializer, request)
    question = operations.question_ask(
        principal,
        subtask_id=subtask,
        text=data["text"],
        blocks_subtask=data["blocks_subtask"],
        run_id=data.get("run"),
        lease_id=data.get("lease_id"),
    )
    return Response(question, status=status.HTTP_201_CREATED)


@extend_schema(request=AgentAnswerSerializer, responses={200: dict})
@api_view(["POST"])
def answer(request: Request, question: str) -> Response:
    data = _valid(AgentAnswerSerializer, request)
    return Response(
        operations.question_answer(_principal(request), question_id=question, answer=data["answer"])
    )


@extend_schema(responses={200: OBJECT_LIST})
@api_view(["GET"])
def review_comments(request: Request, subtask: str) -> Response:
    return Response(operations.review_comments(_principal(request), subtask_id=subtask))
