"""Activity search: words against the stored vectors, filters, highlights, keyset pages."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from accounts.models import Role
from dashboard import search
from orchestration.models import Event, EventKind
from orchestration.services.events import event_record
from tests.dashboard.conftest import LOG_LINE, make_activity
from tests.factories import WorkspaceFactory

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the stored tsvector is PostgreSQL's"
)


@pytest.fixture
def activity(workspace):
    return make_activity(workspace, size=1)


def query(**params) -> search.ActivityQuery:
    return search.ActivityQuery.from_query(params)


@postgres_only
def test_events_store_their_search_vector_at_insert(activity):
    event = Event.objects.filter(kind=EventKind.RUN_FAILED).first()
    assert Event.objects.filter(pk=event.pk, search_vector__isnull=False).exists()


def test_a_line_of_a_run_log_finds_the_run(activity):
    # when
    page = search.search(activity.workspace.pk, query(q="expected hello-world"))
    # then: the failed runs' finishing events, with the log line highlighted
    assert page.hits
    assert {hit.event.kind for hit in page.hits} == {EventKind.RUN_FAILED}
    assert "<mark>" in page.hits[0].snippet
    assert "hello-world" in page.hits[0].snippet


def test_results_never_cross_workspaces(activity):
    other = make_activity(WorkspaceFactory(), size=1, tag="x")
    page = search.search(activity.workspace.pk, query(q="failed"))
    assert page.hits
    assert {hit.event.workspace_id for hit in page.hits} == {activity.workspace.pk}
    assert other.workspace.pk != activity.workspace.pk


def test_filters_narrow_by_kind_and_state(activity):
    page = search.search(activity.workspace.pk, query(kind="subtask", state="blocked"))
    assert [hit.event.subtask.status for hit in page.hits] == ["blocked"]


def test_pages_follow_by_keyset_newest_first(workspace):
    for n in range(7):
        event_record(workspace_id=workspace.pk, kind=EventKind.SUBTASK_STAGE, message=f"word {n}")
    first = search.search(workspace.pk, query(q="word"), page_size=3)
    second = search.search(workspace.pk, query(q="word", before=str(first.older)), page_size=3)
    third = search.search(workspace.pk, query(q="word", before=str(second.older)), page_size=3)
    messages = [h.event.message for p in (first, second, third) for h in p.hits]
    assert messages == [f"word {n}" for n in range(6, -1, -1)]
    assert third.older is None


def test_a_bad_date_is_a_message_not_an_error(activity, signed_in):
    client = signed_in(Role.READER)
    url = reverse("dashboard:search", args=[activity.workspace.code])
    response = client.get(url, {"q": "x", "since": "yesterday"})
    assert response.status_code == 200
    assert "is not a date" in response.content.decode()


def test_the_search_page_shows_highlighted_hits_and_the_log_snippet(activity, signed_in):
    client = signed_in(Role.READER)
    url = reverse("dashboard:search", args=[activity.workspace.code])
    html = client.get(url, {"q": "AssertionError"}).content.decode()
    assert "<mark>AssertionError</mark>" in html
    assert LOG_LINE.split(":")[1].strip().split(" ")[0] in html
