from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.services import token_create_for_user, token_revoke
from orchestration.models import AgentRun, Event, EventKind, Project, Subtask, SubtaskStatus
from tests.conftest import client_for
from tests.factories import (
    FeatureFactory,
    ProjectFactory,
    RunFactory,
    SubtaskFactory,
    set_status,
)

pytestmark = pytest.mark.django_db


def test_anonymous_requests_get_401():
    assert APIClient().get("/api/v1/subtasks/").status_code == 401


def test_revoked_token_is_refused(member):
    user = member()
    token, raw = token_create_for_user(user=user, name="t")
    token_revoke(token=token)
    response = client_for(raw).get("/api/v1/subtasks/")
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked token"


def test_lists_only_show_the_callers_workspaces(api_as, project):
    # given
    mine = SubtaskFactory(project=project)
    SubtaskFactory()  # another workspace
    # when
    response = api_as(Role.READER).get("/api/v1/subtasks/")
    # then
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(mine.code)]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/subtasks/{subtask}/",
        "/api/v1/projects/{project}/",
        "/api/v1/workspaces/{workspace}/",
        "/api/v1/features/{feature}/",
        "/api/v1/runs/{run}/",
    ],
)
def test_another_workspaces_objects_answer_404(api_as, path):
    # given: objects in a workspace the caller is not a member of
    feature = FeatureFactory()
    subtask = SubtaskFactory(project=feature.project, feature=feature)
    run = RunFactory(subtask=subtask)
    codes = {
        "subtask": subtask.code,
        "project": feature.project.code,
        "workspace": feature.workspace.code,
        "feature": feature.code,
        "run": run.code,
    }
    # when
    response = api_as(Role.ADMIN).get(path.format(**codes))
    # then
    assert response.status_code == 404


def test_foreign_subtask_transition_answers_404_and_changes_nothing(api_as):
    foreign = SubtaskFactory()
    response = api_as(Role.ADMIN).post(f"/api/v1/subtasks/{foreign.code}/transitions/start/")
    assert response.status_code == 404
    assert Subtask.objects.get(pk=foreign.pk).status == SubtaskStatus.PENDING
    assert not Event.objects.filter(subtask=foreign).exists()


def test_transition_through_the_api_moves_the_subtask(api_as, project):
    subtask = SubtaskFactory(project=project)
    response = api_as(Role.AUTHOR).post(f"/api/v1/subtasks/{subtask.code}/transitions/start/")
    assert response.status_code == 200
    assert response.json()["status"] == "in_progress"
    assert response.json()["allowed_transitions"] == ["submit", "block"]


def test_refused_transition_answers_409_with_the_allowed_ones(api_as, project):
    # given
    subtask = SubtaskFactory(project=project)
    # when
    response = api_as(Role.AUTHOR).post(f"/api/v1/subtasks/{subtask.code}/transitions/complete/")
    # then: authors may not complete (review), so check with an admin
    assert response.status_code == 403
    response = api_as(Role.ADMIN).post(f"/api/v1/subtasks/{subtask.code}/transitions/complete/")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "cannot complete a subtask that is pending",
        "code": "transition_refused",
        "status": "pending",
        "allowed": ["start"],
    }
    assert Subtask.objects.get(pk=subtask.pk).status == SubtaskStatus.PENDING
    assert not Event.objects.filter(subtask=subtask).exists()


def test_unknown_transition_answers_400(api_as, project):
    subtask = SubtaskFactory(project=project)
    response = api_as(Role.AUTHOR).post(f"/api/v1/subtasks/{subtask.code}/transitions/fly/")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["detail"].startswith("unknown transition 'fly'")


def test_reader_cannot_transition(api_as, project):
    subtask = SubtaskFactory(project=project)
    response = api_as(Role.READER).post(f"/api/v1/subtasks/{subtask.code}/transitions/start/")
    assert response.status_code == 403
    assert Subtask.objects.get(pk=subtask.pk).status == SubtaskStatus.PENDING


def test_reviewer_completes_a_subtask_ready_for_review(api_as, project):
    subtask = set_status(SubtaskFactory(project=project), SubtaskStatus.READY_FOR_REVIEW)
    response = api_as(Role.REVIEWER).post(f"/api/v1/subtasks/{subtask.code}/transitions/complete/")
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


def test_create_project_validates_fields(api_as, workspace):
    client = api_as(Role.AUTHOR)
    response = client.post(
        f"/api/v1/workspaces/{workspace.code}/projects/",
        {"name": "", "policy": {"max_attempts": 0}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"name", "policy"}
    assert response.json()["policy"] == ["max_attempts must be an integer from 1 to 20"]
    assert not Project.objects.exists()


def test_create_project_ignores_a_workspace_in_the_body(api_as, workspace):
    # given: a second workspace the caller also belongs to is named in the body
    other = ProjectFactory().workspace
    client = api_as(Role.AUTHOR)
    # when
    response = client.post(
        f"/api/v1/workspaces/{workspace.code}/projects/",
        {"name": "Shop", "workspace": str(other.code)},
        format="json",
    )
    # then
    assert response.status_code == 201
    project = Project.objects.get(code=response.json()["id"])
    assert project.workspace_id == workspace.pk
    assert response.json()["slug"] == "shop"


def test_reader_cannot_create_projects(api_as, workspace):
    response = api_as(Role.READER).post(
        f"/api/v1/workspaces/{workspace.code}/projects/", {"name": "X"}, format="json"
    )
    assert response.status_code == 403
    assert not Project.objects.exists()


def test_create_subtask_with_duplicate_key_answers_409(api_as, project):
    SubtaskFactory(project=project, key="T-1")
    response = api_as(Role.AUTHOR).post(
        f"/api/v1/projects/{project.code}/subtasks/", {"key": "T-1", "title": "x"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"] == f"subtask 'T-1' already exists in {project.name}"


def test_create_subtask_rejects_bad_enum_values(api_as, project):
    response = api_as(Role.AUTHOR).post(
        f"/api/v1/projects/{project.code}/subtasks/",
        {"key": "T-2", "title": "x", "risk": "extreme", "owner_role": "ceo"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "owner_role": ['"ceo" is not a valid choice.'],
        "risk": ['"extreme" is not a valid choice.'],
    }


def test_status_is_read_only_in_a_patch(api_as, project):
    subtask = SubtaskFactory(project=project)
    response = api_as(Role.AUTHOR).patch(
        f"/api/v1/subtasks/{subtask.code}/", {"status": "completed", "title": "New"}, format="json"
    )
    assert response.status_code == 200
    subtask.refresh_from_db()
    assert (subtask.status, subtask.title) == ("pending", "New")


def test_subtask_filters(api_as, project):
    a = SubtaskFactory(project=project, title="Login form", owner_role="tester")
    b = set_status(SubtaskFactory(project=project, title="Logout"), SubtaskStatus.BLOCKED)
    SubtaskFactory(project=project, title="Other")
    client = api_as(Role.READER)

    def ids(query):
        return {row["id"] for row in client.get(f"/api/v1/subtasks/?{query}").json()["results"]}

    assert ids("q=log") == {str(a.code), str(b.code)}
    assert ids("status=blocked") == {str(b.code)}
    assert ids("role=tester") == {str(a.code)}
    assert ids(f"project={project.code}&status=pending&status=blocked") == {
        str(a.code),
        str(b.code),
    } | ids("q=Other")
    assert client.get("/api/v1/subtasks/?status=nonsense").status_code == 400


def test_dependency_cycle_answers_400_with_the_cycle(api_as, project):
    a = SubtaskFactory(project=project, key="A")
    b = SubtaskFactory(project=project, key="B")
    client = api_as(Role.AUTHOR)
    created = client.post(
        "/api/v1/dependencies/", {"subtask": str(b.code), "depends_on": str(a.code)}, format="json"
    )
    assert created.status_code == 201
    refused = client.post(
        "/api/v1/dependencies/", {"subtask": str(a.code), "depends_on": str(b.code)}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["detail"] == "this dependency would close a cycle: A → B → A"


def test_dependency_to_a_foreign_subtask_answers_404(api_as, project):
    mine = SubtaskFactory(project=project)
    foreign = SubtaskFactory()
    response = api_as(Role.AUTHOR).post(
        "/api/v1/dependencies/",
        {"subtask": str(mine.code), "depends_on": str(foreign.code)},
        format="json",
    )
    assert response.status_code == 404


def test_event_filters_by_subtask_kind_and_time(api_as, project):
    # given
    subtask = SubtaskFactory(project=project)
    client = api_as(Role.ADMIN)
    client.post(f"/api/v1/subtasks/{subtask.code}/transitions/start/")
    client.post(f"/api/v1/subtasks/{subtask.code}/transitions/block/", {"reason": "why?"})
    # when
    by_subtask = client.get(f"/api/v1/events/?subtask={subtask.code}").json()["results"]
    by_kind = client.get("/api/v1/events/?kind=subtask.transition").json()["results"]
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    later = client.get("/api/v1/events/", {"since": future}).json()["results"]
    # then
    assert [e["data"]["transition"] for e in by_subtask if e["kind"] == "subtask.transition"] == [
        "block",
        "start",
    ]
    assert len(by_kind) == 2
    assert later == []
    assert client.get("/api/v1/events/?since=yesterday").status_code == 400


def test_agent_claims_heartbeats_and_completes_through_the_api(agent_api, project):
    # given
    subtask = SubtaskFactory(project=project)
    run = RunFactory(subtask=subtask, role="developer")
    agent = agent_api("developer")
    # when
    claimed = agent.post("/api/v1/runs/claim/", {}, format="json")
    # then
    assert claimed.status_code == 200
    body = claimed.json()
    assert body["id"] == str(run.code)
    lease = body["lease_id"]
    beat = agent.post(f"/api/v1/runs/{run.code}/heartbeat/", {"lease_id": lease}, format="json")
    assert beat.status_code == 200
    assert "lease_id" not in beat.json()
    done = agent.post(
        f"/api/v1/runs/{run.code}/complete/",
        {"lease_id": lease, "output": "done", "tokens_in": 3},
        format="json",
    )
    assert done.status_code == 200
    assert done.json()["status"] == "succeeded"
    assert agent.post("/api/v1/runs/claim/", {}, format="json").status_code == 204


def test_claim_with_a_role_other_than_the_tokens_is_forbidden(agent_api, project):
    RunFactory(subtask=SubtaskFactory(project=project), role="tester", step="tests")
    response = agent_api("developer").post("/api/v1/runs/claim/", {"role": "tester"}, format="json")
    assert response.status_code == 403
    assert AgentRun.objects.get().status == "queued"


def test_finishing_with_a_wrong_lease_answers_409(agent_api, project):
    run = RunFactory(subtask=SubtaskFactory(project=project))
    agent = agent_api("developer")
    agent.post("/api/v1/runs/claim/", {}, format="json")
    response = agent.post(
        f"/api/v1/runs/{run.code}/complete/", {"lease_id": str(uuid.uuid4())}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "lease_lost"
    assert AgentRun.objects.get(pk=run.pk).status == "running"


def test_agent_of_another_workspace_cannot_touch_the_run(agent_api, project):
    run = RunFactory(subtask=SubtaskFactory(project=project))
    other_ws = ProjectFactory().workspace
    response = agent_api("developer", ws=other_ws).post(
        f"/api/v1/runs/{run.code}/heartbeat/", {"lease_id": str(uuid.uuid4())}, format="json"
    )
    assert response.status_code == 404


def test_agent_tokens_cannot_transition_subtasks(agent_api, project):
    subtask = SubtaskFactory(project=project)
    response = agent_api("developer").post(f"/api/v1/subtasks/{subtask.code}/transitions/start/")
    assert response.status_code == 403


def test_member_enqueues_a_run_and_events_record_it(api_as, project):
    subtask = SubtaskFactory(project=project)
    response = api_as(Role.AUTHOR).post(
        "/api/v1/runs/", {"subtask": str(subtask.code), "step": "tests"}, format="json"
    )
    assert response.status_code == 201
    assert (response.json()["role"], response.json()["status"]) == ("tester", "queued")
    assert Event.objects.filter(subtask=subtask, kind=EventKind.RUN_QUEUED).count() == 1


def test_subtask_list_query_count_does_not_grow(api_as, project, django_assert_max_num_queries):
    client = api_as(Role.READER)
    SubtaskFactory.create_batch(3, project=project, feature=FeatureFactory(project=project))
    with django_assert_max_num_queries(6) as small:
        client.get("/api/v1/subtasks/")
    # Read the count now: the next request resets the connection's query log.
    baseline = len(small.captured_queries)
    SubtaskFactory.create_batch(30, project=project, feature=FeatureFactory(project=project))
    with django_assert_max_num_queries(baseline):
        response = client.get("/api/v1/subtasks/")
    assert len(response.json()["results"]) == 33


@pytest.mark.parametrize(
    "path", ["/api/v1/events/", "/api/v1/runs/", "/api/v1/projects/", "/api/v1/features/"]
)
def test_list_query_counts_are_constant(api_as, project, django_assert_max_num_queries, path):
    client = api_as(Role.ADMIN)

    def grow(n):
        for _ in range(n):
            feature = FeatureFactory(project=ProjectFactory(workspace=project.workspace))
            subtask = SubtaskFactory(project=feature.project, feature=feature)
            RunFactory(subtask=subtask)
            client.post(f"/api/v1/subtasks/{subtask.code}/transitions/start/")

    grow(2)
    with django_assert_max_num_queries(8) as small:
        client.get(path)
    baseline = len(small.captured_queries)
    grow(10)
    with django_assert_max_num_queries(baseline):
        assert client.get(path).status_code == 200


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/runs/claim/" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_requesting_a_feature_starts_planning(api_as, project, django_capture_on_commit_callbacks):
    client = api_as(Role.AUTHOR)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/projects/{project.code}/features/", {"title": "Dark mode"}, format="json"
        )
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["branch"]) == (
        "planning",
        "feature/dark-mode",
    )
    plan = AgentRun.objects.get(feature__code=response.json()["id"])
    assert (plan.step, plan.role, plan.status) == ("plan", "pm", "queued")


def test_an_invalid_plan_answers_422_and_fails_the_run(agent_api, project):
    # given: Orion's run, claimed by an external PM agent
    feature = FeatureFactory(project=project)
    run = RunFactory(subtask=None, project=project, workspace=project.workspace,
                     feature=feature, role="pm", step="plan")  # fmt: skip
    agent = agent_api("pm")
    lease = agent.post("/api/v1/runs/claim/", {}, format="json").json()["lease_id"]
    # when
    response = agent.post(
        f"/api/v1/runs/{run.code}/complete/",
        {"lease_id": lease, "result": {"manifest": {"frd": "x", "subtasks": []}}},
        format="json",
    )
    # then
    assert response.status_code == 422
    assert response.json()["detail"] == ("invalid manifest: subtasks: [] should be non-empty")
    run.refresh_from_db()
    assert (run.status, run.result) == ("failed", {"failure_class": "agent"})


def test_cancelling_a_run_and_cancelling_it_again(api_as, project):
    run = RunFactory(subtask=SubtaskFactory(project=project))
    client = api_as(Role.AUTHOR)
    assert client.post(f"/api/v1/runs/{run.code}/cancel/").json()["status"] == "cancelled"
    again = client.post(f"/api/v1/runs/{run.code}/cancel/")
    assert again.status_code == 409
    assert (
        again.json()["detail"] == "run is cancelled; only queued or running runs can be cancelled"
    )


def test_reassigning_moves_queued_runs_to_the_new_profile(api_as, project):
    from orchestration.models import AgentProfile

    subtask = SubtaskFactory(project=project)
    run = RunFactory(subtask=subtask, role="developer")
    other = AgentProfile.objects.create(
        workspace=project.workspace, name="Devon 2", role="developer"
    )
    response = api_as(Role.AUTHOR).post(
        f"/api/v1/subtasks/{subtask.code}/reassign/", {"profile": str(other.code)}, format="json"
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.profile_id == other.pk


def test_reassigning_to_another_workspaces_profile_answers_404(api_as, project):
    from orchestration.models import AgentProfile

    subtask = SubtaskFactory(project=project)
    foreign = AgentProfile.objects.create(
        workspace=ProjectFactory().workspace, name="X", role="developer"
    )
    response = api_as(Role.AUTHOR).post(
        f"/api/v1/subtasks/{subtask.code}/reassign/", {"profile": str(foreign.code)}, format="json"
    )
    assert response.status_code == 404


def test_breaker_state_is_visible_through_the_api(api_as, project):
    from orchestration.models import AgentProfile

    AgentProfile.objects.create(
        workspace=project.workspace, name="Devon", role="developer", breaker_state="open"
    )
    rows = api_as(Role.READER).get("/api/v1/agent-profiles/").json()["results"]
    assert [(r["name"], r["breaker_state"]) for r in rows] == [("Devon", "open")]


def test_only_admins_decide_prompt_proposals(api_as, project):
    from orchestration.models import AgentProfile, PromptProposal

    devon = AgentProfile.objects.create(workspace=project.workspace, name="Devon", role="developer")
    proposal = PromptProposal.objects.create(
        workspace=project.workspace, profile=devon, base_version=1, proposed_template="new"
    )
    path = f"/api/v1/prompt-proposals/{proposal.code}/apply/"
    assert api_as(Role.REVIEWER).post(path).status_code == 403
    response = api_as(Role.ADMIN).post(path)
    assert (response.status_code, response.json()["status"]) == (200, "applied")
    devon.refresh_from_db()
    assert (devon.prompt_template, devon.prompt_version) == ("new", 2)
