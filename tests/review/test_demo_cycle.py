"""The whole demo cycle through review: low-risk work is approved by the policy when its
tests are green, and the feature's branch lands on main, tested, with the agents' commits."""

from __future__ import annotations

import pytest

import gitops
from orchestration.models import Event, EventKind, FeatureStatus, Subtask
from orchestration.services import planning
from review.models import Approval, ChangeSet
from tests.cycle.conftest import data_dir, demo_project  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_low_risk_feature_is_auto_approved_and_merged(demo_project):  # noqa: F811
    # given: the project's default approval policy (the cycle fixture turns it off)
    demo_project.policy.pop("approval")
    demo_project.save(update_fields=["policy"])
    # when
    feature = planning.feature_request(project=demo_project, title="Slugs", actor="user:a")
    # then: both subtasks went through, each gate opened by the policy on green tests
    feature.refresh_from_db()
    assert feature.status == FeatureStatus.DONE
    assert set(Subtask.objects.filter(feature=feature).values_list("status", flat=True)) == {
        "completed"
    }
    # (the first subtask's gate, approved on its head, was dismissed by the second's push)
    gates = list(Approval.objects.filter(feature=feature).order_by("id"))
    assert [(g.kind, g.state, g.auto) for g in gates] == [
        ("merge", "dismissed", True),
        ("merge", "approved", True),
    ]
    changeset = ChangeSet.objects.get(feature=feature)
    assert (changeset.status, changeset.risk) == ("merged", "low")
    # main holds the merge of exactly the tested head
    main = gitops.head_commit(demo_project.repo_path, "main")
    assert main == changeset.merged_sha
    parents = gitops.run_git(demo_project.repo_path, "rev-list", "--parents", "-n1", main)
    assert parents.stdout.split()[2] == changeset.head_sha
    authors = {c.author_name.split(" ")[0] for c in gitops.log(demo_project.repo_path, "main")}
    assert {"Tara", "Devon"} <= authors
    assert Event.objects.filter(kind=EventKind.REVIEW_MERGED, feature=feature).count() == 1


def test_a_project_may_turn_low_risk_auto_approval_off(demo_project):  # noqa: F811
    demo_project.policy = {**demo_project.policy, "approval": {"auto_approve_low": False}}
    demo_project.save()
    feature = planning.feature_request(project=demo_project, title="Slugs", actor="user:a")
    first = Subtask.objects.get(feature=feature, key="slug-1")
    assert first.status == "ready_for_review"
    assert Approval.objects.get(feature=feature, kind="merge").state == "pending"
    assert ChangeSet.objects.get(feature=feature).status == "open"
