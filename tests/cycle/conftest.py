"""A real demo repository and demo agent profiles for the autonomous cycle's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import gitops
from accounts.models import AgentRole
from orchestration.demo.seed import TEST_COMMAND, demo_repo_create
from orchestration.models import AgentProfile, Executor
from tests.factories import ProjectFactory, WorkspaceFactory


@pytest.fixture
def data_dir(tmp_path, settings) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


@pytest.fixture
def demo_project(data_dir):
    repo = data_dir / "repos" / "textkit"
    demo_repo_create(path=repo)
    workspace = WorkspaceFactory()
    project = ProjectFactory(
        workspace=workspace,
        repo_path=str(repo),
        test_command=TEST_COMMAND,
        # Low-risk work would be auto-approved and merged (tests/review covers that); these
        # tests stop at ready_for_review to look at the cycle before review.
        policy={
            "max_attempts": 3,
            "backoff_seconds": 0,
            "backoff_max_seconds": 0,
            "approval": {"auto_approve_low": False},
        },
    )
    for name, role in (
        ("Orion", AgentRole.PM),
        ("Tara", AgentRole.TESTER),
        ("Devon", AgentRole.DEVELOPER),
    ):
        AgentProfile.objects.create(
            workspace=workspace, name=name, role=role, executor=Executor.DEMO
        )
    return project


def branch_log(project, branch: str) -> list[gitops.Commit]:
    return gitops.log(project.repo_path, branch, 50)
