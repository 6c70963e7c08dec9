"""A workspace with realistic activity for the page tests: every state, runs, test runs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Role
from orchestration.models import (
    AgentRun,
    CaseOutcome,
    CoverageFile,
    EventKind,
    FeatureRequest,
    Subtask,
    SubtaskDependency,
    SubtaskStatus,
    TestCaseResult,
    TestRun,
)
from orchestration.services.events import event_record
from tests.factories import FeatureFactory, MembershipFactory, ProjectFactory, set_status

LOG_LINE = "AssertionError: expected 'hello-world' but got 'Hello-World' in slugify"


@dataclass
class Activity:
    workspace: object
    project: object
    feature: FeatureRequest
    subtasks: list[Subtask]
    runs: list[AgentRun]
    test_run: TestRun


def make_activity(workspace, *, size: int = 2, tag: str = "") -> Activity:
    """`size` subtasks in each state, with dependencies, runs, events and a test run."""
    project = ProjectFactory(workspace=workspace)
    feature = FeatureFactory(project=project, frd="# Slugs\n\nTurn titles into slugs.")
    subtasks, runs, previous = [], [], None
    now = timezone.now()
    for state in SubtaskStatus.values:
        for n in range(size):
            subtask = Subtask.objects.create(
                workspace=workspace,
                project=project,
                feature=feature,
                key=f"{tag}{state[:4]}-{n}",
                title=f"{state} work {n}",
                estimate_hours=Decimal("0.5"),
                requirements_developer="make it work",
            )
            set_status(subtask, state, status_changed_at=now)
            if previous is not None:
                SubtaskDependency.objects.create(subtask=subtask, depends_on=previous)
            previous = subtask
            event_record(
                workspace_id=workspace.pk,
                kind=EventKind.SUBTASK_TRANSITION,
                message=f"{subtask.key} pending → {state} (start)",
                actor="orchestrator",
                subtask=subtask,
                data={"transition": "start", "from": "pending", "to": state},
            )
            run = AgentRun.objects.create(
                workspace=workspace,
                project=project,
                feature=feature,
                subtask=subtask,
                role="developer",
                step="implementation",
                status="running" if state == SubtaskStatus.IN_PROGRESS else "failed",
                claimed_at=now,
                finished_at=None if state == SubtaskStatus.IN_PROGRESS else now,
                output=f"collected 7 items\n{LOG_LINE}\n1 failed",
                error="tests failed",
                tokens_in=100,
                tokens_out=50,
                cost=Decimal("0.01"),
            )
            runs.append(run)
            if run.status == "failed":
                event_record(
                    workspace_id=workspace.pk,
                    kind=EventKind.RUN_FAILED,
                    message="Implement run failed (agent): tests failed",
                    actor="worker:demo",
                    run=run,
                    data={"failure_class": "agent", "error": "tests failed"},
                )
            subtasks.append(subtask)
    test_run = TestRun.objects.create(
        workspace=workspace,
        project=project,
        feature=feature,
        subtask=subtasks[0],
        purpose="verify",
        status="failed",
        total=3,
        passed=2,
        failed=1,
        duration_seconds=1.5,
        finished_at=now,
    )
    TestCaseResult.objects.create(
        test_run=test_run,
        name="test_slug",
        classname="tests.test_slug",
        outcome=CaseOutcome.FAILED,
        message=LOG_LINE,
    )
    TestCaseResult.objects.create(
        test_run=test_run, name="test_ok", classname="tests.test_slug", outcome=CaseOutcome.PASSED
    )
    CoverageFile.objects.create(
        test_run=test_run, path="textkit/slug.py", lines_valid=10, lines_covered=8, line_rate=0.8
    )
    return Activity(workspace, project, feature, subtasks, runs, test_run)


@pytest.fixture
def activity(workspace):
    return make_activity(workspace)


@pytest.fixture
def signed_in(member):
    """signed_in(role) → a Django test client signed in as a member with that role."""

    def make(role: str = Role.AUTHOR, ws=None) -> Client:
        user = member(role, ws)
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def outsider_client(db):
    client = Client()
    client.force_login(MembershipFactory().user)  # a member of another workspace only
    return client
