"""A real demo repository worked on by external agents (who claim through the API or MCP)."""

from __future__ import annotations

import difflib

import pytest

from accounts.models import AgentRole
from orchestration.demo.seed import TEST_COMMAND, demo_repo_create
from orchestration.models import AgentProfile, Executor
from orchestration.services import transitions, work
from tests.cycle.conftest import data_dir  # noqa: F401  (a fixture)
from tests.factories import ProjectFactory, WorkspaceFactory

PUNCTUATION_TEST = (
    "from textkit import word_count\n\n\n"
    "def test_word_count_ignores_punctuation():\n"
    '    assert word_count("hello , world !") == 2\n'
)


def new_file_patch(path: str, text: str) -> str:
    lines = text.splitlines(keepends=True)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}" for line in lines)
    )


def edit_patch(path: str, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )


@pytest.fixture
def external_project(data_dir):  # noqa: F811
    repo = data_dir / "repos" / "textkit"
    demo_repo_create(path=repo)
    workspace = WorkspaceFactory()
    project = ProjectFactory(
        workspace=workspace,
        repo_path=str(repo),
        test_command=TEST_COMMAND,
        policy={"max_attempts": 3, "backoff_seconds": 0, "backoff_max_seconds": 0},
    )
    for name, role in (("Tara", AgentRole.TESTER), ("Devon", AgentRole.DEVELOPER)):
        AgentProfile.objects.create(
            workspace=workspace, name=name, role=role, executor=Executor.EXTERNAL
        )
    return project


def punctuation_subtask(project, *, start: bool = True):
    subtask = work.subtask_create(
        project=project,
        key="WC-1",
        title="word_count ignores punctuation",
        description="Counting words must not count stray punctuation as words.",
        requirements_developer="Change `word_count` in textkit/words.py so that tokens "
        "without a letter or digit are not counted.",
        requirements_tester="Pin that `word_count` ignores tokens made only of punctuation.",
        actor="user:test",
    )
    if start:
        transitions.subtask_transition(subtask=subtask, name="start", actor="user:test")
    return subtask
