"""The whole cycle with the demo agents, tasks run inline at commit (no worker process).

The same path with a real Celery worker and Redis is in test_worker_cycle.py.
"""

from __future__ import annotations

import pytest

from accounts.models import Role
from accounts.permissions import Principal
from orchestration.models import (
    AgentRun,
    Event,
    EventKind,
    FeatureStatus,
    RunStatus,
    Subtask,
    SubtaskStatus,
    TestRun,
)
from orchestration.services import planning, transitions
from tests.cycle.conftest import branch_log
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_feature_goes_from_request_to_ready_for_review_with_a_retry(demo_project):
    # when
    feature = planning.feature_request(
        project=demo_project, title="Slugs for titles", actor="user:alice"
    )
    # then: Orion planned two subtasks; the first went all the way, the second waits for it
    feature.refresh_from_db()
    assert feature.status == FeatureStatus.IN_PROGRESS
    assert "Slugs for titles" in feature.frd
    first = Subtask.objects.get(feature=feature, key="slug-1")
    second = Subtask.objects.get(feature=feature, key="slug-2")
    assert (first.status, first.stage, first.attempts) == ("ready_for_review", "implementation", 1)
    assert second.status == SubtaskStatus.PENDING
    # the test runs: red check, failing verify (scripted bug), passing verify
    runs = list(TestRun.objects.filter(subtask=first).order_by("id"))
    assert [(r.purpose, r.status) for r in runs] == [
        ("red_check", "failed"),
        ("verify", "failed"),
        ("verify", "passed"),
    ]
    assert runs[2].passed == runs[2].total == 7  # 4 of the template, 3 of Tara
    assert runs[1].failure_context.startswith("Tests failed:")
    # Devon's retry carried the failure context
    retry = AgentRun.objects.get(subtask=first, step="implementation", attempt=2)
    assert "Previous failure" in retry.briefing
    assert "test_slugify_lower_cases_and_joins_words" in retry.briefing
    # the branch history shows each agent's commits, each tied to its run
    commits = branch_log(demo_project, feature.branch)
    authors = [c.author_name.split(" ")[0] for c in commits]
    assert authors[:3] == ["Devon", "Devon", "Tara"]
    assert {c.run_code for c in commits[:3]} == {
        str(r.code) for r in AgentRun.objects.filter(subtask=first).exclude(step="plan")
    }


def test_completing_the_first_subtask_starts_its_dependent_and_the_feature_finishes(
    demo_project,
):
    # given
    feature = planning.feature_request(project=demo_project, title="Slugs", actor="user:a")
    first = Subtask.objects.get(feature=feature, key="slug-1")
    # when: a reviewer completes the first (approving it: the review's rules apply); the
    # second runs through; then completes it
    reviewer = Principal(
        user=MembershipFactory(workspace=demo_project.workspace, role=Role.REVIEWER).user
    )
    transitions.subtask_transition(
        subtask=first, name="complete", actor=reviewer.label, principal=reviewer
    )
    second = Subtask.objects.get(feature=feature, key="slug-2")
    assert second.status == SubtaskStatus.READY_FOR_REVIEW
    transitions.subtask_transition(
        subtask=second, name="complete", actor=reviewer.label, principal=reviewer
    )
    # then
    feature.refresh_from_db()
    assert feature.status == FeatureStatus.DONE
    assert AgentRun.objects.filter(feature=feature, status=RunStatus.SUCCEEDED).count() == 6
    kinds = list(Event.objects.filter(feature=feature).values_list("kind", flat=True))
    assert kinds.count(EventKind.TESTS_RED) == 2
