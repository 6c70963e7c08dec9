"""GET /api/agent/briefing/<subtask>: shape, content, retries, review comments, budget."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from agents import review
from agents.briefing import PRIORITY, briefing_build
from agents.models import BriefingRecord, Question
from agents.tokens import count_json
from orchestration.models import AgentRun, Event, TestCaseResult, TestRun
from tests.agents.conftest import punctuation_subtask
from tests.factories import set_status

pytestmark = pytest.mark.django_db

DESIGN_KEYS = {"subtask", "log", "requirements", "relevantFiles", "recentActivity", "openQuestions"}


def briefing_url(subtask) -> str:
    return f"/api/agent/briefing/{subtask.code}"


def test_a_fresh_subtask_briefing_has_the_design_shape(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    client = agent_api("developer", ws=external_project.workspace)
    # when
    response = client.get(briefing_url(subtask))
    # then
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= DESIGN_KEYS
    assert {"retry", "reviewComments", "tokens", "budget"} <= set(body)
    assert body["subtask"]["key"] == "WC-1"
    assert body["subtask"]["status"] == "pending"
    assert body["requirements"] == {
        "developer": subtask.requirements_developer,
        "tester": subtask.requirements_tester,
    }
    assert body["role"] == "developer"
    assert body["retry"] is None
    assert body["reviewComments"] == []
    assert body["openQuestions"] == []
    assert [e["kind"] for e in body["recentActivity"]] == ["subtask.created"]
    assert [e["kind"] for e in body["log"]["events"]] == ["subtask.created"]
    # the file the requirements name comes first, with the lines about word_count
    first = body["relevantFiles"][0]
    assert first["path"] == "textkit/words.py"
    assert "named" in first["why"]
    assert "def word_count(text: str) -> int:" in first["snippet"]
    # the size is the real tokenizer's count of what was sent, within the profile's budget
    assert body["tokens"] == count_json(body)
    assert body["budget"] == {"limit": 16000, "order": list(PRIORITY), "trimmed": {}}
    record = BriefingRecord.objects.get(subtask=subtask)
    assert (record.tokens, record.budget, record.role) == (body["tokens"], 16000, "developer")


def failed_attempt(subtask) -> AgentRun:
    """Devon's first attempt failed its verify test run; a retry run is queued."""
    set_status(subtask, "retrying", stage="implementation", attempts=1)
    first = AgentRun.objects.create(
        workspace_id=subtask.workspace_id, project=subtask.project, subtask=subtask,
        role="developer", step="implementation", status="succeeded", attempt=1,
        result={"commit": "a" * 40, "branch": "main", "base": "b" * 40},
    )  # fmt: skip
    test_run = TestRun.objects.create(
        workspace_id=subtask.workspace_id, project=subtask.project, subtask=subtask,
        agent_run=first, purpose="verify", status="failed", commit_sha="a" * 40, total=5,
        passed=4, failed=1,
        failure_context="Tests failed:\ntests/test_words.py::test_title_case_collapses_whitespace"
        "\nAssertionError: assert 'Many  Spaces' == 'Many Spaces'",
    )  # fmt: skip
    TestCaseResult.objects.create(
        test_run=test_run, name="test_title_case_collapses_whitespace",
        classname="tests.test_words", outcome="failed",
        message="AssertionError: assert 'Many  Spaces' == 'Many Spaces'",
    )  # fmt: skip
    return AgentRun.objects.create(
        workspace_id=subtask.workspace_id, project=subtask.project, subtask=subtask,
        role="developer", step="implementation", attempt=2,
    )  # fmt: skip


def test_a_retry_briefing_carries_the_previous_failure(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    retry_run = failed_attempt(subtask)
    client = agent_api("developer", ws=external_project.workspace)
    # when
    body = client.get(briefing_url(subtask), {"run": str(retry_run.code)}).json()
    # then
    retry = body["retry"]
    assert retry["attempt"] == 2
    assert retry["failureContext"].startswith("Tests failed:")
    assert retry["failingTests"] == [
        {
            "classname": "tests.test_words",
            "name": "test_title_case_collapses_whitespace",
            "file": "",
            "message": "AssertionError: assert 'Many  Spaces' == 'Many Spaces'",
        }
    ]
    assert body["run"]["id"] == str(retry_run.code)
    # the failing test's file is among the relevant files, showing the failing test
    files = {f["path"]: f for f in body["relevantFiles"]}
    assert "failing test" in files["tests/test_words.py"]["why"]
    assert "def test_title_case_collapses_whitespace" in files["tests/test_words.py"]["snippet"]
    assert [r["status"] for r in body["log"]["runs"]] == ["succeeded", "queued"]
    assert [t["status"] for t in body["log"]["testRuns"]] == ["failed"]
    assert BriefingRecord.objects.get(run=retry_run).tokens == body["tokens"]


def test_review_comments_are_in_the_briefing_and_point_at_files(
    external_project, agent_api, monkeypatch
):
    # given: an unresolved comment on textkit/__init__.py
    subtask = punctuation_subtask(external_project, start=False)
    comment = {
        "id": "c-1", "path": "textkit/__init__.py", "line": 1, "side": "new",
        "author": "alice", "body": "export slugify here too", "createdAt": "2026-01-01T00:00:00",
    }  # fmt: skip
    monkeypatch.setattr(review, "unresolved_comments", lambda subtask: [comment])
    client = agent_api("developer", ws=external_project.workspace)
    # when
    body = client.get(briefing_url(subtask)).json()
    # then
    assert body["reviewComments"] == [comment]
    files = {f["path"]: f for f in body["relevantFiles"]}
    assert files["textkit/__init__.py"]["why"] == ["review comment"]
    assert "    1| " in files["textkit/__init__.py"]["snippet"]


def many_events(subtask, count: int) -> None:
    Event.objects.bulk_create(
        Event(
            workspace_id=subtask.workspace_id,
            project_id=subtask.project_id,
            subtask=subtask,
            kind="subtask.stage",
            actor="bench",
            message=f"event number {n} of a long history, with some words to weigh it",
        )
        for n in range(count)
    )


def test_budget_trimming_keeps_the_highest_priority_parts(external_project):
    # given: a retry, an open question, and a history far larger than the budget
    subtask = punctuation_subtask(external_project, start=False)
    retry_run = failed_attempt(subtask)
    Question.objects.create(
        workspace_id=subtask.workspace_id, subtask=subtask, asked_by="agent:devon",
        text="Does an apostrophe inside a word split it?",
    )  # fmt: skip
    many_events(subtask, 400)
    # when
    body = briefing_build(subtask=subtask, requested_by="test", run=retry_run, budget=2500).body
    # then: within the budget; the top sections whole, the log cut from its oldest end
    assert body["tokens"] <= 2500
    assert body["tokens"] == count_json(body)
    assert body["requirements"]["developer"] == subtask.requirements_developer
    assert body["retry"]["failureContext"].startswith("Tests failed:")
    assert len(body["retry"]["failingTests"]) == 1
    assert [q["text"] for q in body["openQuestions"]] == [
        "Does an apostrophe inside a word split it?"
    ]
    trimmed = body["budget"]["trimmed"]
    assert set(trimmed) <= {"relevantFiles", "recentActivity", "log"}
    assert trimmed["log"] > 300
    kept = [e["id"] for e in body["log"]["events"]]
    newest = list(
        Event.objects.filter(subtask=subtask).order_by("-id").values_list("id", flat=True)
    )
    assert kept == sorted(newest[: len(kept)])  # the newest, oldest first


def test_a_tiny_budget_cuts_the_failure_context_before_dropping_it(external_project):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    retry_run = failed_attempt(subtask)
    TestRun.objects.filter(subtask=subtask).update(
        failure_context="Tests failed:\n" + "a long traceback line\n" * 2000
    )
    # when
    body = briefing_build(subtask=subtask, requested_by="test", run=retry_run, budget=1200).body
    # then
    assert body["tokens"] <= 1200
    assert body["retry"]["failureContext"].endswith("[… cut to fit the budget]")
    assert body["budget"]["trimmed"]["retry"] == 1
    assert body["log"]["events"] == []


def test_the_number_of_queries_does_not_grow_with_the_history(external_project):
    # given: a fresh subtask and one with a long history, a retry and questions
    fresh = punctuation_subtask(external_project, start=False)
    busy = punctuation_subtask_copy(external_project)
    retry_run = failed_attempt(busy)
    many_events(busy, 300)
    for n in range(5):
        Question.objects.create(
            workspace_id=busy.workspace_id, subtask=busy, asked_by="agent:x", text=f"q{n}"
        )

    def queries(subtask, run=None) -> int:
        with CaptureQueriesContext(connection) as captured:
            briefing_build(subtask=subtask, requested_by="test", run=run)
        return len(captured)

    # then
    assert queries(fresh) == queries(busy) == queries(busy, retry_run)


def punctuation_subtask_copy(project):
    from orchestration.services import work

    return work.subtask_create(
        project=project, key="WC-2", title="second", actor="user:test",
        requirements_developer="Touch textkit/words.py", requirements_tester="Pin it",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("reader", 200),
        ("developer-agent", 200),
        ("tester-agent", 200),
        ("pm-agent", 403),
        ("qa-agent", 403),
        ("outsider", 404),
        ("other-workspace-agent", 404),
    ],
)
def test_who_may_read_a_briefing(
    who, expected, external_project, agent_api, api_as, outsider_api, workspace
):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    ws = external_project.workspace
    clients = {
        "reader": lambda: api_as(Role.READER, ws),
        "developer-agent": lambda: agent_api("developer", ws),
        "tester-agent": lambda: agent_api("tester", ws),
        "pm-agent": lambda: agent_api("pm", ws),
        "qa-agent": lambda: agent_api("qa", ws),
        "outsider": lambda: outsider_api,
        "other-workspace-agent": lambda: agent_api("developer", workspace),
    }
    # when
    response = clients[who]().get(briefing_url(subtask))
    # then
    assert response.status_code == expected
    assert BriefingRecord.objects.count() == (1 if expected == 200 else 0)


def test_an_agent_of_a_further_role_may_read_the_subtasks_it_has_work_on(
    external_project, agent_api
):
    # given: a QA/Breaker run on the subtask
    subtask = punctuation_subtask(external_project, start=False)
    AgentRun.objects.create(
        workspace_id=subtask.workspace_id, project=subtask.project, subtask=subtask,
        role="qa", step="tests",
    )  # fmt: skip
    # when
    response = agent_api("qa", external_project.workspace).get(briefing_url(subtask))
    # then
    assert response.status_code == 200
    assert response.json()["instructions"].startswith("You are the QA/Breaker.")
