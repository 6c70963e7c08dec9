"""Every page renders for members, hides the workspace from outsiders, and keeps a constant
number of queries however much activity there is (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from tests.dashboard.conftest import make_activity

PAGES = [
    ("workspace", lambda a: []),
    ("board", lambda a: []),
    ("states", lambda a: []),
    ("tests", lambda a: []),
    ("metrics", lambda a: []),
    ("search", lambda a: []),
    ("feature", lambda a: [a.feature.code]),
    ("subtask", lambda a: [a.subtasks[3].code]),
    ("run", lambda a: [a.runs[3].code]),
]
# Queries per page, session and user lookups included: fixed, whatever the activity.
QUERIES = {
    "workspace": 13,
    "board": 17,
    "states": 8,
    "tests": 10,
    "metrics": 12,
    "search": 5,
    "feature": 12,
    "subtask": 14,  # + the feature's change set and the approvals (review app)
    "run": 6,
}


def url(activity, name, args_of):
    return reverse(f"dashboard:{name}", args=[activity.workspace.code, *args_of(activity)])


@pytest.mark.parametrize(("name", "args_of"), PAGES)
def test_each_page_renders_for_a_reader(activity, signed_in, name, args_of):
    # given
    client = signed_in(Role.READER)
    # when
    response = client.get(url(activity, name, args_of))
    # then
    assert response.status_code == 200
    assert b"CodeMaestro" in response.content


@pytest.mark.parametrize(("name", "args_of"), PAGES)
def test_outsiders_get_404_on_every_page(activity, outsider_client, name, args_of):
    assert outsider_client.get(url(activity, name, args_of)).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(activity, client):
    response = client.get(reverse("dashboard:board", args=[activity.workspace.code]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(("name", "args_of"), PAGES)
def test_query_count_does_not_grow_with_the_activity(workspace, signed_in, name, args_of):
    # given: a small workspace, then three times as much activity
    client = signed_in(Role.AUTHOR)
    small = make_activity(workspace, size=1, tag="a")
    before = _queries(client, url(small, name, args_of))
    make_activity(workspace, size=3, tag="b")
    # when
    after = _queries(client, url(small, name, args_of))
    # then
    assert before == after == QUERIES[name]


def test_a_search_with_words_and_filters_keeps_a_fixed_query_count(workspace, signed_in):
    client = signed_in(Role.READER)
    activity = make_activity(workspace, size=3)
    path = reverse("dashboard:search", args=[workspace.code])
    params = "?q=failed&kind=run&state=failed&since=2000-01-01"
    assert _queries(client, path + params) == 12
    make_activity(workspace, size=3, tag="more")
    assert _queries(client, path + params) == 12
    assert activity.workspace == workspace


def test_the_subtask_page_links_to_its_change_set_and_approvals(activity, signed_in):
    # given: the review app opened a change set for the feature, with a merge gate
    from review.models import Approval, ChangeSet

    subtask = activity.subtasks[0]
    changeset = ChangeSet.objects.create(
        workspace=activity.workspace,
        project=activity.project,
        feature=activity.feature,
        branch="feature/slugs",
        base_branch="main",
    )
    gate = Approval.objects.create(
        workspace=activity.workspace, feature=activity.feature, changeset=changeset, kind="merge"
    )
    client = signed_in(Role.READER)
    # when
    html = client.get(url(activity, "subtask", lambda a: [subtask.code])).content.decode()
    # then: the review app's own pages, not placeholders
    page = reverse("review:changeset", args=[changeset.code])
    assert f'href="{page}"' in html
    assert f'href="{page}#approval-{gate.code}"' in html
    assert "once the review app is installed" not in html
