"""Open review comments reach the agents' briefing, from the review app itself."""

from __future__ import annotations

import pytest

from accounts.models import Role
from accounts.permissions import Principal
from agents.review import unresolved_comments
from orchestration.models import Subtask
from orchestration.services import planning
from review.models import ChangeSet
from review.services.comments import comment_add, comment_transition
from tests.cycle.conftest import data_dir, demo_project  # noqa: F401 (fixtures)
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_open_threads_with_replies_are_the_agents_review_comments(demo_project):  # noqa: F811
    # given: the first subtask waits for review, and a reviewer comments on a line
    feature = planning.feature_request(project=demo_project, title="Slugs", actor="user:a")
    subtask = Subtask.objects.get(feature=feature, key="slug-1")
    changeset = ChangeSet.objects.get(feature=feature)
    reviewer = Principal(
        user=MembershipFactory(workspace=demo_project.workspace, role=Role.REVIEWER).user
    )
    thread = comment_add(
        changeset=changeset,
        principal=reviewer,
        body="Fold accents **before** lower-casing.",
        path="textkit/slug.py",
        first_line=8,
    )
    comment_add(changeset=changeset, principal=reviewer, body="(see NFKD)", parent=thread)
    resolved = comment_add(
        changeset=changeset, principal=reviewer, body="typo", path="textkit/slug.py", first_line=1
    )
    comment_transition(comment=resolved, name="resolve", principal=reviewer)
    # when
    comments = unresolved_comments(subtask)
    # then
    assert [(c["path"], c["line"], c["body"]) for c in comments] == [
        ("textkit/slug.py", 8, "Fold accents **before** lower-casing.")
    ]
    assert [r["body"] for r in comments[0]["replies"]] == ["(see NFKD)"]
