"""A project-limited agent token claims only its project's runs on the agents' API too."""

from __future__ import annotations

import pytest

from accounts.services import token_create_for_agent
from tests.conftest import client_for
from tests.factories import ProjectFactory, RunFactory, SubtaskFactory

pytestmark = pytest.mark.django_db


def test_project_limited_token_claims_only_its_project_on_the_agents_api():
    mine = ProjectFactory()
    other = ProjectFactory(workspace=mine.workspace)
    RunFactory(subtask=SubtaskFactory(project=other))
    wanted = RunFactory(subtask=SubtaskFactory(project=mine))
    _, raw = token_create_for_agent(
        workspace=mine.workspace, role="developer", name="scoped", project=mine
    )
    agent = client_for(raw)

    first = agent.post("/api/agent/runs/claim", {}, format="json")
    second = agent.post("/api/agent/runs/claim", {}, format="json")

    assert first.status_code == 200
    assert first.json()["id"] == str(wanted.code)
    assert second.status_code == 204
