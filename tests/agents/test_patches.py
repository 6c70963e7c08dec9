"""Patches and results through /api/agent/: applied to the run's branch or refused, then the
cycle moves on; runs given back to the queue; context used per run."""

from __future__ import annotations

from pathlib import Path

import pytest

import gitops
from agents.models import BriefingRecord
from orchestration.models import AgentRun, Event, Subtask, TestRun
from tests.agents.conftest import PUNCTUATION_TEST, edit_patch, new_file_patch, punctuation_subtask

WORDS = "textkit/words.py"
OLD_COUNT = "    return len(text.split())\n"
NEW_COUNT = "    return sum(1 for word in text.split() if any(c.isalnum() for c in word))\n"


def fix_patch(repo: str) -> str:
    old = (Path(repo) / WORDS).read_text()
    return edit_patch(WORDS, old, old.replace(OLD_COUNT, NEW_COUNT))


def claim(client) -> dict:
    response = client.post("/api/v1/runs/claim/", {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def submit(client, run: dict, patch: str):
    return client.post(
        f"/api/agent/runs/{run['id']}/patch",
        {"lease_id": run["lease_id"], "patch": patch},
        format="json",
    )


def report(client, run: dict, **fields):
    return client.post(
        f"/api/agent/runs/{run['id']}/result",
        {"lease_id": run["lease_id"], "success": True, **fields},
        format="json",
    )


@pytest.mark.django_db(transaction=True)
def test_tara_and_devon_move_a_subtask_to_review_through_the_agent_api(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project)
    tara = agent_api("tester", external_project.workspace)
    devon = agent_api("developer", external_project.workspace)
    # when: Tara submits a failing test and reports success
    run = claim(tara)
    published = submit(tara, run, new_file_patch("tests/test_punctuation.py", PUNCTUATION_TEST))
    assert published.status_code == 201, published.content
    assert published.json()["files"] == ["tests/test_punctuation.py"]
    assert report(tara, run).json()["status"] == "succeeded"
    # then: the red check saw her test fail, and Devon has a run
    subtask.refresh_from_db()
    assert (subtask.status, subtask.stage) == ("in_progress", "implementation")
    assert [t.status for t in TestRun.objects.filter(subtask=subtask)] == ["failed"]
    # when: Devon fixes word_count
    run = claim(devon)
    assert run["step"] == "implementation"
    assert submit(devon, run, fix_patch(external_project.repo_path)).status_code == 201
    finished = report(devon, run, tokens_in=1200, tokens_out=300)
    # then: his run carries the commit, the tests pass, and the subtask waits for review
    assert finished.status_code == 200
    result = finished.json()["result"]
    branch_head = gitops.head_commit(external_project.repo_path, "main")
    assert (result["commit"], result["branch"]) == (branch_head, "main")
    subtask.refresh_from_db()
    assert subtask.status == "ready_for_review"
    assert TestRun.objects.filter(subtask=subtask).latest("id").status == "passed"
    commits = gitops.log(external_project.repo_path, "main", 3)
    assert [c.author_name.split(" ")[0] for c in commits[:2]] == ["Devon", "Tara"]


@pytest.mark.django_db
def test_a_patch_that_does_not_apply_is_refused_with_the_reason(external_project, agent_api):
    # given: Devon holds a run
    subtask = punctuation_subtask(external_project, start=False)
    AgentRun.objects.create(
        workspace=external_project.workspace, project=external_project, subtask=subtask,
        role="developer", step="implementation",
    )  # fmt: skip
    devon = agent_api("developer", external_project.workspace)
    run = claim(devon)
    head = gitops.head_commit(external_project.repo_path, "main")
    stale = edit_patch(WORDS, "def word_count(text):\n    return 0\n", "def word_count(text):\n")
    # when
    response = submit(devon, run, stale)
    # then: refused with git's reason; nothing published, the run still his
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "patch_rejected"
    assert "patch does not apply" in body["detail"]
    assert WORDS in body["detail"]
    assert gitops.head_commit(external_project.repo_path, "main") == head
    assert AgentRun.objects.get(code=run["id"]).status == "running"


@pytest.mark.django_db
def test_success_without_a_patch_is_refused(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    AgentRun.objects.create(
        workspace=external_project.workspace, project=external_project, subtask=subtask,
        role="developer", step="implementation",
    )  # fmt: skip
    devon = agent_api("developer", external_project.workspace)
    run = claim(devon)
    # when
    response = report(devon, run)
    # then
    assert response.status_code == 400
    assert "submit a patch first" in response.json()["detail"]
    assert AgentRun.objects.get(code=run["id"]).status == "running"


@pytest.mark.django_db
def test_a_released_run_goes_back_to_the_queue(external_project, agent_api):
    # given
    subtask = punctuation_subtask(external_project, start=False)
    AgentRun.objects.create(
        workspace=external_project.workspace, project=external_project, subtask=subtask,
        role="developer", step="implementation",
    )  # fmt: skip
    devon = agent_api("developer", external_project.workspace)
    run = claim(devon)
    url = f"/api/agent/runs/{run['id']}/release"
    # when
    response = devon.post(url, {"lease_id": run["lease_id"], "reason": "Ctrl-C"}, format="json")
    # then
    assert response.status_code == 200
    stored = AgentRun.objects.get(code=run["id"])
    assert (stored.status, stored.claimed_by, stored.lease_id) == ("queued", "", None)
    event = Event.objects.filter(run=stored).latest("id")
    assert (event.kind, event.data["reason"]) == ("run.released", "Ctrl-C")
    # and the lease is gone: releasing again is refused
    again = devon.post(url, {"lease_id": run["lease_id"]}, format="json")
    assert again.status_code == 409
    assert claim(devon)["id"] == run["id"]


@pytest.mark.django_db
def test_the_context_used_by_a_run_is_stored_and_shown(external_project, agent_api):
    # given: a run whose briefing was read twice
    subtask = punctuation_subtask(external_project, start=False)
    AgentRun.objects.create(
        workspace=external_project.workspace, project=external_project, subtask=subtask,
        role="developer", step="implementation",
    )  # fmt: skip
    devon = agent_api("developer", external_project.workspace)
    run = claim(devon)
    sizes = [devon.get(f"/api/agent/runs/{run['id']}/briefing").json()["tokens"] for _ in "ab"]
    # when
    context = devon.get(f"/api/agent/runs/{run['id']}/context").json()
    # then
    assert [b["tokens"] for b in context["briefings"]] == sizes
    assert {b["budget"] for b in context["briefings"]} == {16000}
    assert BriefingRecord.objects.filter(run__code=run["id"]).count() == 2
    assert Subtask.objects.get(pk=subtask.pk).status == "pending"
