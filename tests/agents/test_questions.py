"""Open questions: agents ask, people answer, the answer appears in the next briefing."""

from __future__ import annotations

import pytest

from accounts.models import Role
from agents.models import Question
from orchestration.models import AgentRun, Event, Subtask
from tests.agents.conftest import punctuation_subtask


def questions_url(subtask) -> str:
    return f"/api/agent/subtasks/{subtask.code}/questions"


def answer_url(question_id: str) -> str:
    return f"/api/agent/questions/{question_id}/answer"


@pytest.mark.django_db(transaction=True)
def test_a_blocking_question_stops_the_subtask_until_a_person_answers(
    external_project, agent_api, api_as
):
    # given: Tara holds the tests run of a started subtask
    subtask = punctuation_subtask(external_project)
    tara = agent_api("tester", external_project.workspace)
    run = tara.post("/api/v1/runs/claim/", {}, format="json").json()
    # when: she asks, blocking
    asked = tara.post(
        questions_url(subtask),
        {"text": "Is '--' a word?", "blocks_subtask": True, "run": run["id"],
         "lease_id": run["lease_id"]},
        format="json",
    )  # fmt: skip
    # then: the subtask is blocked on the question and her run is over
    assert asked.status_code == 201
    question = asked.json()
    assert (question["status"], question["blocks_subtask"]) == ("open", True)
    subtask.refresh_from_db()
    assert subtask.status == "blocked"
    assert subtask.blocked_reason.startswith(f"waiting for an answer to question {question['id']}")
    assert AgentRun.objects.get(code=run["id"]).status == "cancelled"
    briefing = tara.get(f"/api/agent/briefing/{subtask.code}").json()
    assert [(q["text"], q["status"]) for q in briefing["openQuestions"]] == [
        ("Is '--' a word?", "open")
    ]
    # when: an author answers
    author = api_as(Role.AUTHOR, external_project.workspace)
    answered = author.post(answer_url(question["id"]), {"answer": "No."}, format="json")
    # then: the subtask resumes, Tara gets a fresh run, and the answer is in her briefing
    assert answered.status_code == 200
    assert answered.json()["status"] == "answered"
    subtask.refresh_from_db()
    assert subtask.status == "in_progress"
    assert AgentRun.objects.filter(subtask=subtask, role="tester", status="queued").count() == 1
    briefing = tara.get(f"/api/agent/briefing/{subtask.code}").json()
    assert briefing["openQuestions"][0]["answer"] == "No."
    assert briefing["openQuestions"][0]["answeredBy"] == f"user:{author.user.username}"
    kinds = list(Event.objects.filter(subtask=subtask).values_list("kind", flat=True))
    assert {"question.asked", "question.answered"} <= set(kinds)


@pytest.mark.django_db
def test_a_question_that_does_not_block_changes_nothing_else(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    devon = agent_api("developer", external_project.workspace)
    # when
    response = devon.post(questions_url(subtask), {"text": "Unicode dashes?"}, format="json")
    # then
    assert response.status_code == 201
    assert Subtask.objects.get(pk=subtask.pk).status == "pending"
    assert [q["text"] for q in devon.get(questions_url(subtask)).json()] == ["Unicode dashes?"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "expected"),
    [("author", 200), ("reviewer", 200), ("reader", 403), ("developer-agent", 403),
     ("product-agent", 200), ("outsider", 404)],
)  # fmt: skip
def test_who_may_answer(who, expected, external_project, agent_api, api_as, outsider_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    ws = external_project.workspace
    question = Question.objects.create(
        workspace=ws, subtask=subtask, asked_by="agent:devon", text="Which locale?"
    )
    clients = {
        "author": lambda: api_as(Role.AUTHOR, ws),
        "reviewer": lambda: api_as(Role.REVIEWER, ws),
        "reader": lambda: api_as(Role.READER, ws),
        "developer-agent": lambda: agent_api("developer", ws),
        "product-agent": lambda: agent_api("product", ws),
        "outsider": lambda: outsider_api,
    }
    # when
    response = clients[who]().post(answer_url(question.code), {"answer": "C"}, format="json")
    # then
    assert response.status_code == expected
    question.refresh_from_db()
    assert question.is_open == (expected != 200)


@pytest.mark.django_db
def test_a_question_is_answered_once(external_project, api_as):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    question = Question.objects.create(
        workspace=external_project.workspace, subtask=subtask, asked_by="a", text="?"
    )
    author = api_as(Role.AUTHOR, external_project.workspace)
    author.post(answer_url(question.code), {"answer": "first"}, format="json")
    # when
    again = author.post(answer_url(question.code), {"answer": "second"}, format="json")
    # then
    assert again.status_code == 409
    question.refresh_from_db()
    assert question.answer == "first"


@pytest.mark.django_db
def test_asking_for_a_held_run_needs_its_lease(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    run = AgentRun.objects.create(
        workspace=external_project.workspace, project=external_project, subtask=subtask,
        role="developer", step="implementation", status="running", lease_id="0" * 32,
    )  # fmt: skip
    devon = agent_api("developer", external_project.workspace)
    # when
    response = devon.post(
        questions_url(subtask), {"text": "?", "blocks_subtask": True, "run": str(run.code)},
        format="json",
    )  # fmt: skip
    # then
    assert response.status_code == 400
    assert not Question.objects.exists()
    run.refresh_from_db()
    assert run.status == "running"
