"""The claim as one statement: what it writes, what it returns, and what it costs.

On PostgreSQL run_claim takes the run and appends its `run.claimed` event in a single
prepared statement; these tests hold it to what events.event_record would have written
and to what the API answers. On SQLite the portable path runs and the same behaviours hold.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.authentication import active_token
from accounts.models import hash_token
from accounts.services import token_create_for_agent, token_create_for_user, token_revoke
from orchestration.api.serializers import ClaimedRunSerializer, claimed_run_data
from orchestration.models import AgentRun, Event, EventKind, RunStatus
from orchestration.services import events, runs
from tests.conftest import client_for
from tests.factories import FeatureFactory, ProjectFactory, RunFactory, SubtaskFactory, UserFactory

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement claim is PostgreSQL's"
)


def claim(workspace_id, name="agent:devon", **kwargs):
    return runs.run_claim(
        workspace_id=workspace_id, role="developer", claimer=runs.Claimer(name=name), **kwargs
    )


def test_claim_event_holds_what_event_record_writes():
    # given: a run of a subtask of a feature
    feature = FeatureFactory()
    subtask = SubtaskFactory(project=feature.project, feature=feature)
    queued = RunFactory(subtask=subtask, feature=feature, step="tests", role="developer")
    # when
    run = claim(queued.workspace_id, name="agent:it's 100% devon")
    # then
    event = Event.objects.get(run=run, kind=EventKind.RUN_CLAIMED)
    assert event.message == "Write tests run claimed by agent:it's 100% devon"
    assert event.actor == "agent:it's 100% devon"
    assert (event.workspace_id, event.project_id) == (run.workspace_id, run.project_id)
    assert (event.feature_id, event.subtask_id) == (feature.pk, subtask.pk)
    assert event.data == {"lease_expires_at": run.lease_expires_at.isoformat()}
    assert event.created_at >= run.claimed_at
    if connection.vendor == "postgresql":
        expected = events._search_document(event.message, event.kind, event.actor, event.data, run)
        stored, wanted = (
            Event.objects.filter(pk=event.pk)
            .annotate(expected=expected)
            .values_list("search_vector", "expected")
            .get()
        )
        assert stored == wanted
        assert Event.objects.filter(pk=event.pk, search_vector="devon").exists()


def test_claim_event_message_is_scrubbed_of_known_secret_values():
    from accounts import scrubbing

    queued = RunFactory()
    scrubbing.remember(["hunter2-secret-value"])
    run = claim(queued.workspace_id, name="bot hunter2-secret-value")
    event = Event.objects.get(run=run, kind=EventKind.RUN_CLAIMED)
    assert "hunter2-secret-value" not in event.message
    assert event.message.endswith(scrubbing.MASK)


@postgresql_only
def test_claim_is_one_statement_and_its_run_needs_no_further_query():
    # given
    subtask = SubtaskFactory()
    RunFactory(subtask=subtask)
    # when
    with CaptureQueriesContext(connection) as claiming:
        run = claim(subtask.workspace_id)
    # then
    assert len(claiming.captured_queries) == 1
    with CaptureQueriesContext(connection) as answering:
        data = claimed_run_data(run)
    assert answering.captured_queries == []
    assert (data["project"], data["subtask"], data["feature"]) == (
        str(subtask.project.code),
        str(subtask.code),
        None,
    )


def test_claimed_run_is_the_row_as_the_database_holds_it():
    queued = RunFactory(briefing="do it", result={"keep": [1, 2]})
    run = claim(queued.workspace_id)
    stored = AgentRun.objects.get(pk=run.pk)
    fields = [f.attname for f in AgentRun._meta.concrete_fields]
    assert {f: getattr(run, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert run.status == RunStatus.RUNNING and run.claim_count == 1
    assert run.result == {"keep": [1, 2]}


def test_claim_answer_is_the_claimed_run_serializers():
    feature = FeatureFactory()
    queued = RunFactory(subtask=SubtaskFactory(project=feature.project), feature=feature)
    run = claim(queued.workspace_id)
    assert claimed_run_data(run) == ClaimedRunSerializer(run).data


def test_claim_publishes_its_event_once_committed(django_capture_on_commit_callbacks):
    queued = RunFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        claim(queued.workspace_id)
    assert len(callbacks) == 1


def test_claim_limited_to_a_project_skips_the_other_projects_runs():
    # given: the older run is in another project of the same workspace
    mine = ProjectFactory()
    other = ProjectFactory(workspace=mine.workspace)
    RunFactory(subtask=SubtaskFactory(project=other))
    wanted = RunFactory(subtask=SubtaskFactory(project=mine))
    # when
    first = claim(mine.workspace_id, project_id=mine.pk)
    second = claim(mine.workspace_id, project_id=mine.pk)
    # then
    assert (first.pk, second) == (wanted.pk, None)


def test_project_limited_agent_token_claims_only_its_project_through_the_api():
    mine = ProjectFactory()
    other = ProjectFactory(workspace=mine.workspace)
    RunFactory(subtask=SubtaskFactory(project=other))
    wanted = RunFactory(subtask=SubtaskFactory(project=mine))
    _, raw = token_create_for_agent(
        workspace=mine.workspace, role="developer", name="scoped", project=mine
    )
    agent = client_for(raw)
    claimed = agent.post("/api/v1/runs/claim/", {}, format="json")
    assert claimed.status_code == 200
    assert claimed.json()["id"] == str(wanted.code)
    assert agent.post("/api/v1/runs/claim/", {}, format="json").status_code == 204


def test_token_lookup_loads_the_user_with_the_token_in_one_query():
    user = UserFactory()
    token, raw = token_create_for_user(user=user, name="laptop")
    with CaptureQueriesContext(connection) as lookup:
        found = active_token(hash_token(raw))
        assert (found.pk, found.user.pk, found.user.username) == (token.pk, user.pk, user.username)
    assert len(lookup.captured_queries) == 1
    assert found.created_at == token.created_at


def test_token_lookup_finds_no_revoked_or_unknown_token():
    token, raw = token_create_for_user(user=UserFactory(), name="old")
    token_revoke(token=token, actor="test")
    assert active_token(hash_token(raw)) is None
    assert active_token(hash_token("cm_unknown")) is None


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"lease_seconds": 0},
            {"lease_seconds": ["Ensure this value is greater than or equal to 1."]},
        ),
        ({"role": "astronaut"}, {"role": ['"astronaut" is not a valid choice.']}),
        ([], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
    ],
)
def test_claim_request_errors_name_their_field(agent_api, body, errors):
    response = agent_api("developer").post("/api/v1/runs/claim/", body, format="json")
    assert response.status_code == 400
    assert {key: response.json()[key] for key in errors} == errors
