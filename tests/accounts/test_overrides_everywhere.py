"""Project overrides and project-limited agent tokens hold in the API, pages and agents' API."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import Role
from tests.conftest import client_for
from tests.factories import ProjectFactory, RunFactory, SubtaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_projects(workspace):
    return ProjectFactory(workspace=workspace), ProjectFactory(workspace=workspace)


def test_an_author_made_reader_on_a_project_cannot_move_its_subtasks_by_api(api_as, two_projects):
    locked, free = two_projects
    client = api_as(Role.AUTHOR)
    services.project_role_set(project=locked, user=client.user, role=Role.READER, actor="t")
    blocked = SubtaskFactory(project=locked)
    allowed = SubtaskFactory(project=free)
    response = client.post(f"/api/v1/subtasks/{blocked.code}/transitions/start/")
    assert response.status_code == 403
    assert client.post(f"/api/v1/subtasks/{allowed.code}/transitions/start/").status_code == 200
    # reading is still allowed: a reader sees the project
    assert client.get(f"/api/v1/subtasks/{blocked.code}/").status_code == 200
    status = blocked.status
    blocked.refresh_from_db()
    assert blocked.status == status


def test_a_reader_made_author_on_a_project_moves_its_subtasks_on_the_board(
    workspace, member, two_projects
):
    raised, other = two_projects
    user = member(Role.READER)
    services.project_role_set(project=raised, user=user, role=Role.AUTHOR, actor="t")
    client = Client()
    client.force_login(user)

    def start(subtask):
        return client.post(
            reverse("dashboard:subtask-transition", args=[workspace.code, subtask.code, "start"])
        )

    assert start(SubtaskFactory(project=other)).status_code == 403
    target = SubtaskFactory(project=raised)
    assert start(target).status_code == 302
    status = target.status
    target.refresh_from_db()
    assert target.status != status


def test_a_project_limited_agent_token_sees_and_works_only_in_its_project(workspace, two_projects):
    home, other = two_projects
    _, raw = services.token_create_for_agent(
        workspace=workspace, role="developer", name="scoped", project=home
    )
    agent = client_for(raw)
    mine = RunFactory(subtask=SubtaskFactory(project=home))
    theirs = RunFactory(subtask=SubtaskFactory(project=other))
    listed = {r["id"] for r in agent.get("/api/v1/runs/").json()["results"]}
    assert str(mine.code) in listed and str(theirs.code) not in listed
    assert agent.get(f"/api/v1/subtasks/{theirs.subtask.code}/").status_code == 404
    assert agent.get(f"/api/v1/subtasks/{mine.subtask.code}/").status_code == 200
    projects = {p["id"] for p in agent.get("/api/v1/projects/").json()["results"]}
    assert projects == {str(home.code)}


def test_feature_requests_from_the_page_follow_the_role_on_the_chosen_project(
    workspace, member, two_projects
):
    locked, free = two_projects
    user = member(Role.AUTHOR)
    services.project_role_set(project=locked, user=user, role=Role.READER, actor="t")
    client = Client()
    client.force_login(user)
    path = reverse("dashboard:feature-new", args=[workspace.code])
    refused = client.post(path, {"project": str(locked.code), "title": "Nope"})
    assert refused.status_code == 403
    assert client.post(path, {"project": str(free.code), "title": "Yes"}).status_code == 302
    assert list(free.features.values_list("title", flat=True)) == ["Yes"]
    assert not locked.features.exists()
