"""The review pages (htmx fragments, ETags, live poll, git panel) and the review API."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

from accounts.models import Role
from accounts.permissions import Principal
from accounts.services import membership_set, token_create_for_agent, token_create_for_user
from orchestration.lock_objects import lock_subtask
from orchestration.services import handoffs_table
from review import pages
from review.models import Approval, ChangeSet, ReviewComment
from review.services import comments
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, set_status

pytestmark = pytest.mark.django_db

LINES = "".join(f"value_{n} = {n}\n" for n in range(1, 41))


@pytest.fixture
def opened(setup, django_capture_on_commit_callbacks):
    """A medium-risk change set waiting for a reviewer: two files, one of them Python."""
    subtask = setup.subtask(risk="medium")
    setup.push({"src/values.py": LINES, "README.md": "hello\nworld\n"})
    set_status(subtask, "testing", stage="implementation")
    setup.green()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        handoffs_table.open_review(lock_subtask(subtask.pk), 0)
    return ChangeSet.objects.get()


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _files(changeset):
    return [entry["path"] for entry in changeset.revisions.order_by("number").last().files]


def test_the_change_set_page_shows_tree_risk_gate_and_first_file(setup, opened):
    page = _browser(setup.reviewer).get(f"/review/c/{opened.code}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Medium risk" in html and "declared medium by subtask" in html
    assert "Merge of revision 1" in html and ">Approve</button>" in html
    assert 'href="#file-0"' in html and 'href="#file-1"' in html
    # the first file is in the page; the second loads when scrolled to
    assert 'id="body-0"' in html and 'class="rv-diff split"' in html
    assert 'id="body-1"' in html and 'hx-trigger="revealed"' in html


def test_outsiders_get_404_and_readers_see_no_buttons(setup, opened, workspace):
    outsider = UserFactory()
    assert _browser(outsider).get(f"/review/c/{opened.code}/").status_code == 404
    reader = MembershipFactory(workspace=workspace, role=Role.READER).user
    html = _browser(reader).get(f"/review/c/{opened.code}/").content.decode()
    assert ">Approve</button>" not in html
    assert 'data-can-comment=""' in html


def test_a_file_fragment_answers_304_until_its_threads_change(setup, opened):
    client = _browser(setup.reviewer)
    index = _files(opened).index("src/values.py")
    url = f"/review/c/{opened.code}/file/?i={index}&view=unified"
    first = client.get(url)
    assert first.status_code == 200 and "value_40" in first.content.decode()
    again = client.get(url, headers={"if-none-match": first["ETag"]})
    assert again.status_code == 304
    # a comment on the file changes the fragment (and its ETag)
    client.post(
        f"/review/c/{opened.code}/comments/?view=unified",
        {"path": "src/values.py", "side": "new", "first_line": "3", "body": "why 3?"},
    )
    after = client.get(url, headers={"if-none-match": first["ETag"]})
    assert after.status_code == 200 and "why 3?" in after.content.decode()


def test_posting_a_comment_returns_its_thread_and_renders_markdown_safely(setup, opened):
    client = _browser(setup.reviewer)
    response = client.post(
        f"/review/c/{opened.code}/comments/",
        {
            "path": "src/values.py",
            "side": "new",
            "first_line": "2",
            "line_count": "2",
            "body": "**nice** <script>alert(1)</script> [x](javascript:alert(1))",
        },
        headers={"hx-request": "true"},
    )
    html = response.content.decode()
    comment = ReviewComment.objects.get()
    assert f'id="thread-{comment.code}"' in html
    assert "<strong>nice</strong>" in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert (comment.first_line, comment.line_count) == (2, 2)


def test_a_refused_comment_comes_back_as_the_form_with_the_reason(setup, opened, workspace):
    reader = MembershipFactory(workspace=workspace, role=Role.READER).user
    response = _browser(reader).post(
        f"/review/c/{opened.code}/comments/",
        {"path": "src/values.py", "side": "new", "first_line": "2", "body": "hi"},
    )
    html = response.content.decode()
    assert response.status_code == 403
    assert "your role in this workspace does not allow opening review threads" in html
    assert ReviewComment.objects.count() == 0


def test_the_poll_is_cheap_until_something_changes(setup, opened, workspace):
    client = _browser(setup.filer)
    page = client.get(f"/review/c/{opened.code}/").content.decode()
    poll_url = page.split('id="rv-poll" hidden data-url="')[1].split('"')[0].replace("&amp;", "&")
    assert client.get(poll_url).status_code == 204
    # another person comments
    _browser(setup.reviewer).post(
        f"/review/c/{opened.code}/comments/",
        {"path": "README.md", "side": "new", "first_line": "1", "body": "Say more."},
    )
    update = client.get(poll_url)
    html = update.content.decode()
    assert update.status_code == 200
    assert "Say more." in html and 'hx-swap-oob="true"' in html
    new_poll = html.split('id="rv-poll" hidden data-url="')[1].split('"')[0].replace("&amp;", "&")
    assert client.get(new_poll).status_code == 204


def test_approving_from_the_page_merges(setup, opened, django_capture_on_commit_callbacks):
    gate = Approval.objects.get(kind="merge")
    client = _browser(setup.reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/review/approvals/{gate.code}/approve/", {"note": ""})
    assert response.status_code == 200 and "Approved" in response.content.decode()
    assert ChangeSet.objects.get().status == "merged"
    page = client.get(f"/review/c/{gate.changeset.code}/").content.decode()
    assert 'data-status="merged"' in page


def test_the_filer_sees_why_they_cannot_approve(setup, opened, workspace):
    membership_set(workspace=setup.project.workspace, user=setup.filer, role=Role.REVIEWER)
    gate = Approval.objects.get(kind="merge")
    response = _browser(setup.filer).post(f"/review/approvals/{gate.code}/approve/")
    assert "the person who filed the feature cannot approve its changes" in (
        response.content.decode()
    )
    gate.refresh_from_db()
    assert gate.state == "pending"


def test_a_huge_file_loads_in_chunks(setup, workspace):
    subtask = setup.subtask(risk="low")
    setup.push({"big.txt": "".join(f"row {n}\n" for n in range(4_000))})
    from review.services import changesets

    changeset = changesets.changeset_refresh(feature=setup.feature, actor="t")
    client = _browser(setup.reviewer)
    first = client.get(f"/review/c/{changeset.code}/file/?i=0&view=unified").content.decode()
    assert first.count('class="d-add"') == 1499 and 'class="d-more"' in first
    more_url = first.split('class="d-more" hx-get="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(more_url).content.decode()
    assert second.count('class="d-add"') == 1500 and not second.startswith("<div")
    assert subtask.status == "pending"


def test_expanding_context_returns_the_hidden_rows(setup, opened):
    setup.push({"src/values.py": LINES.replace("value_20 = 20\n", "value_20 = 'twenty'\n")})
    from review.services import changesets

    changesets.changeset_refresh(feature=setup.feature, actor="t")
    index = _files(ChangeSet.objects.get()).index("src/values.py")
    url = f"/review/c/{opened.code}/context/?i={index}&o=1&n=1&c=3&view=unified"
    html = _browser(setup.reviewer).get(url).content.decode()
    assert html.count('class="d-ctx"') == 3 and "value_3" in html


def test_the_interdiff_shows_only_what_changed_since_a_revision(setup, opened):
    setup.push({"src/values.py": LINES.replace("value_20 = 20\n", "value_20 = 'twenty'\n")})
    from review.services import changesets

    changesets.changeset_refresh(feature=setup.feature, actor="t")
    client = _browser(setup.reviewer)
    html = client.get(f"/review/c/{opened.code}/?r=2&since=1&view=unified").content.decode()
    assert "Interdiff: what changed from revision 1 to revision 2" in html
    assert 'href="#file-0"' in html and 'href="#file-1"' not in html  # README unchanged
    assert ">twenty<" in html and ">value_21<" in html and ">value_5<" not in html
    assert '<span class="add">+1</span> <span class="del">&minus;1</span></p>' in html


def test_the_git_panel_shows_branches_commits_and_pending_approvals(setup, opened, workspace):
    html = _browser(setup.filer).get(f"/review/w/{workspace.code}/git/").content.decode()
    assert "feature/shiny" in html and "<td>1</td><td>0</td>" in html  # ahead 1, behind 0
    assert "Pending approvals" in html and setup.feature.title in html
    assert 'class="badge person"' in html


# --- the API ------------------------------------------------------------------------------


def _api(user):
    _, raw = token_create_for_user(user=user, name="t")
    return client_for(raw)


def test_the_api_lists_and_details_change_sets(setup, opened, outsider_api):
    api = _api(setup.reviewer)
    listed = api.get("/api/v1/changesets/").json()["results"]
    assert [row["id"] for row in listed] == [str(opened.code)]
    detail = api.get(f"/api/v1/changesets/{opened.code}/").json()
    assert detail["risk"] == "medium" and detail["revisions"][0]["number"] == 1
    assert sorted(f["path"] for f in detail["latest"]["files"]) == ["README.md", "src/values.py"]
    assert detail["approvals"][0]["state"] == "pending"
    assert outsider_api.get(f"/api/v1/changesets/{opened.code}/").status_code == 404


def test_the_api_opens_threads_and_agents_only_reply(setup, opened, workspace):
    api = _api(setup.reviewer)
    created = api.post(
        f"/api/v1/changesets/{opened.code}/comments/",
        {"path": "README.md", "side": "new", "first_line": 2, "body": "typo"},
        format="json",
    )
    assert created.status_code == 201
    thread = created.json()["id"]
    _, raw = token_create_for_agent(workspace=workspace, role="developer", name="devon")
    agent = client_for(raw)
    refused = agent.post(
        f"/api/v1/changesets/{opened.code}/comments/",
        {"path": "README.md", "first_line": 1, "body": "I approve myself"},
        format="json",
    )
    assert refused.status_code == 403
    reply = agent.post(
        f"/api/v1/changesets/{opened.code}/comments/",
        {"parent": thread, "body": "fixed in attempt 2"},
        format="json",
    )
    assert reply.status_code == 201
    assert [r["body"] for r in reply.json()["replies"]] == ["fixed in attempt 2"]
    resolved = api.post(f"/api/v1/review-comments/{thread}/transitions/resolve/")
    assert resolved.json()["state"] == "resolved"


def test_the_api_refuses_agents_and_the_filer_as_approvers(setup, opened, workspace):
    gate = Approval.objects.get(kind="merge")
    _, raw = token_create_for_agent(workspace=workspace, role="developer", name="devon")
    assert client_for(raw).post(f"/api/v1/approvals/{gate.code}/approve/").status_code == 403
    membership_set(workspace=setup.project.workspace, user=setup.filer, role=Role.REVIEWER)
    filer = _api(setup.filer).post(f"/api/v1/approvals/{gate.code}/approve/")
    assert filer.status_code == 403
    assert filer.json()["detail"] == "the person who filed the feature cannot approve its changes"
    approved = _api(setup.reviewer).post(f"/api/v1/approvals/{gate.code}/approve/", {"note": "ok"})
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    pending = _api(setup.reviewer).get("/api/v1/approvals/?state=pending").json()["results"]
    assert pending == []


def test_replies_show_their_text_and_threads_cost_no_query_each(
    setup, opened, django_assert_max_num_queries
):
    # given: three threads on the Python file, each with a reply
    reviewer = Principal(user=setup.reviewer)
    for line in (3, 9, 20):
        root = comments.comment_add(
            changeset=opened, principal=reviewer, body=f"root {line}", path="src/values.py",
            first_line=line,
        )  # fmt: skip
        comments.comment_add(
            changeset=opened, principal=reviewer, body=f"reply **{line}**", parent=root
        )
    client = _browser(setup.reviewer)
    index = _files(opened).index("src/values.py")
    url = f"/review/c/{opened.code}/file/?i={index}&view=split"
    client.get(url)  # the diff's caches are warm; threads are read per request
    # when
    with django_assert_max_num_queries(12):
        html = client.get(url).content.decode()
    # then
    for line in (3, 9, 20):
        assert f"<p>reply <strong>{line}</strong></p>" in html


def test_a_file_past_the_collapse_threshold_waits_behind_load_diff(setup, opened, monkeypatch):
    # given: a threshold the 40-line file is past, the 2-line one is not
    monkeypatch.setattr(pages, "COLLAPSE_LINES", 10)
    client = _browser(setup.reviewer)
    index = _files(opened).index("src/values.py")
    # when
    html = client.get(f"/review/c/{opened.code}/").content.decode()
    # then: the page names it and offers the button, and holds none of its rows
    body = html.split(f'id="body-{index}"')[1].split("</section>")[0]
    assert "Large diff: 40 changed lines are not loaded by default." in body
    assert ">Load diff</button>" in body and "value_40" not in html
    assert 'hx-trigger="revealed"' not in body  # scrolling past it loads nothing
    # and the button's fragment is the file's diff
    fragment = client.get(f"/review/c/{opened.code}/file/?r=1&view=split&i={index}")
    assert fragment.status_code == 200 and "value_40" in fragment.content.decode()


def test_a_fragment_of_a_file_the_change_set_lacks_is_404(setup, opened):
    client = _browser(setup.reviewer)
    for index in ("2", "99", "-1", "x"):
        response = client.get(f"/review/c/{opened.code}/file/?i={index}")
        assert response.status_code == 404, index
