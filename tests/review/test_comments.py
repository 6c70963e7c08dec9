"""Inline comments: anchoring, carrying forward across revisions, threads, states, rights."""

from __future__ import annotations

import re

import pytest

from accounts.models import Role
from accounts.permissions import Principal
from accounts.services import token_create_for_agent
from orchestration.errors import InvalidInput, NotAllowed, TransitionRefused
from orchestration.models import Event, EventKind
from review.markdown import render_markdown
from review.models import CommentPlacement, ReviewComment
from review.services import changesets, comments
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

LINES = "".join(f"line {n}\n" for n in range(1, 31))


def _open(setup, files):
    setup.push(files)
    return changesets.changeset_refresh(feature=setup.feature, actor="test")


def _comment(setup, changeset, line, *, path="a.txt", side="new", count=1, body="why?"):
    return comments.comment_add(
        changeset=changeset,
        principal=Principal(user=setup.reviewer),
        body=body,
        path=path,
        side=side,
        first_line=line,
        line_count=count,
    )


def _placement(comment, number):
    return CommentPlacement.objects.filter(comment=comment, revision__number=number).first()


def test_a_comment_is_anchored_to_revision_file_side_and_lines(setup):
    # given
    changeset = _open(setup, {"a.txt": LINES})
    # when
    comment = _comment(setup, changeset, 12, count=3, body="**rename** this")
    # then
    assert (comment.revision.number, comment.path, comment.side) == (1, "a.txt", "new")
    assert (comment.first_line, comment.line_count, comment.state) == (12, 3, "open")
    assert comment.author_label == f"user:{setup.reviewer.username}"
    event = Event.objects.get(kind=EventKind.REVIEW_COMMENT)
    assert event.data["thread"] == str(comment.code)
    changeset.refresh_from_db()
    assert changeset.comments_version == 1


def test_a_thread_moves_with_its_lines_on_a_new_revision(setup):
    # given: a comment on lines 12-13; the next push inserts two lines above them
    changeset = _open(setup, {"a.txt": LINES})
    comment = _comment(setup, changeset, 12, count=2)
    # when
    _open(setup, {"a.txt": "new 1\nnew 2\n" + LINES})
    # then
    placement = _placement(comment, 2)
    assert (placement.path, placement.side, placement.first_line) == ("a.txt", "new", 14)


def test_a_thread_whose_lines_changed_is_outdated_on_the_new_revision(setup):
    changeset = _open(setup, {"a.txt": LINES})
    kept = _comment(setup, changeset, 2)
    changed = _comment(setup, changeset, 12, count=3)
    _open(setup, {"a.txt": LINES.replace("line 13\n", "line thirteen\n")})
    assert _placement(kept, 2).first_line == 2
    assert _placement(changed, 2) is None  # outdated: shown apart, never on the wrong line


def test_an_insertion_inside_the_range_outdates_it(setup):
    changeset = _open(setup, {"a.txt": LINES})
    comment = _comment(setup, changeset, 10, count=3)
    _open(setup, {"a.txt": LINES.replace("line 11\n", "line 11\ninserted\n")})
    assert _placement(comment, 2) is None


def test_a_thread_on_a_deleted_file_is_outdated(setup):
    changeset = _open(setup, {"a.txt": LINES, "b.txt": "b\n"})
    comment = _comment(setup, changeset, 1)
    _open(setup, {"a.txt": None})
    assert _placement(comment, 2) is None


def test_a_thread_follows_a_renamed_file(setup):
    changeset = _open(setup, {"a.txt": LINES})
    comment = _comment(setup, changeset, 5)
    setup.on_branch()
    (setup.repo / "a.txt").rename(setup.repo / "renamed.txt")
    from tests.review.conftest import commit_all

    commit_all(setup.repo, "rename")
    setup.on_main()
    changesets.changeset_refresh(feature=setup.feature, actor="test")
    placement = _placement(comment, 2)
    assert (placement.path, placement.first_line) == ("renamed.txt", 5)


def test_a_thread_on_the_old_side_stays_while_the_base_is_unchanged(setup):
    # given: main has a file; the branch edits it; a comment on an old (base) line
    setup.on_main()
    (setup.repo / "base.txt").write_text(LINES)
    from tests.review.conftest import commit_all, git

    commit_all(setup.repo, "base file")
    git(setup.repo, "branch", "-f", setup.branch, "main")
    changeset = _open(setup, {"base.txt": LINES.replace("line 20\n", "line twenty\n")})
    comment = _comment(setup, changeset, 20, path="base.txt", side="old")
    # when: the branch changes something else
    _open(setup, {"other.txt": "x\n"})
    # then
    placement = _placement(comment, 2)
    assert (placement.side, placement.first_line) == ("old", 20)


def test_replies_join_the_thread_and_share_its_anchor(setup, workspace):
    changeset = _open(setup, {"a.txt": LINES})
    thread = _comment(setup, changeset, 3)
    token, _ = token_create_for_agent(workspace=workspace, role="developer", name="devon")
    agent = Principal(user=None, token=token)
    # when: the reviewer and then an agent reply (to the reply: it joins the root)
    first = comments.comment_add(
        changeset=changeset, principal=Principal(user=setup.filer), body="ok", parent=thread
    )
    second = comments.comment_add(
        changeset=changeset, principal=agent, body="done in attempt 2", parent=first
    )
    # then
    assert [r.body for r in thread.replies.order_by("id")] == ["ok", "done in attempt 2"]
    assert (second.parent_id, second.first_line, second.author_label) == (
        thread.pk,
        3,
        "agent:devon",
    )


def test_agents_and_readers_cannot_open_threads(setup, workspace):
    changeset = _open(setup, {"a.txt": LINES})
    reader = MembershipFactory(workspace=workspace, role=Role.READER).user
    token, _ = token_create_for_agent(workspace=workspace, role="developer", name="bot")
    for principal in (Principal(user=reader), Principal(user=None, token=token)):
        with pytest.raises(NotAllowed):
            comments.comment_add(
                changeset=changeset, principal=principal, body="x", path="a.txt", first_line=1
            )
    assert ReviewComment.objects.count() == 0
    assert not Event.objects.filter(kind=EventKind.REVIEW_COMMENT).exists()


@pytest.mark.parametrize(
    ("path", "side", "line", "count", "message"),
    [
        ("nope.txt", "new", 1, 1, "'nope.txt' is not a file of revision 1"),
        ("a.txt", "old", 1, 1, "an added file has no old side"),
        ("a.txt", "new", 0, 1, "first_line starts at 1"),
        ("a.txt", "new", 1, 0, "line_count must be 1 to 1000"),
        ("a.txt", "up", 1, 1, "side must be one of old, new"),
    ],
)
def test_refuses_a_comment_with_a_bad_anchor(setup, path, side, line, count, message):
    changeset = _open(setup, {"a.txt": LINES})
    with pytest.raises(InvalidInput) as refused:
        _comment(setup, changeset, line, path=path, side=side, count=count)
    assert refused.value.message == message
    assert ReviewComment.objects.count() == 0


def test_a_thread_is_resolved_dropped_and_reopened(setup):
    changeset = _open(setup, {"a.txt": LINES})
    thread = _comment(setup, changeset, 3)
    reviewer = Principal(user=setup.reviewer)
    assert comments.comment_transition(
        comment=thread, name="resolve", principal=reviewer
    ).state == ("resolved")
    with pytest.raises(TransitionRefused):
        comments.comment_transition(comment=thread, name="drop", principal=reviewer)
    comments.comment_transition(comment=thread, name="reopen", principal=reviewer)
    assert comments.comment_transition(comment=thread, name="drop", principal=reviewer).state == (
        "dropped"
    )


def test_only_the_author_or_a_reviewer_settles_a_thread(setup, workspace):
    changeset = _open(setup, {"a.txt": LINES})
    thread = _comment(setup, changeset, 3)
    other_author = MembershipFactory(workspace=workspace, role=Role.AUTHOR).user
    with pytest.raises(NotAllowed):
        comments.comment_transition(
            comment=thread, name="resolve", principal=Principal(user=other_author)
        )
    thread.refresh_from_db()
    assert thread.state == "open"


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "![x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=//evil></iframe>",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        '<svg onload="alert(1)">',
        "`<script>` in code",
        "<div onclick=alert(1)>hi</div>",
        '[x](" onmouseover="alert(1))',
    ],
)
def test_markdown_attacks_render_inert(attack):
    html = render_markdown(attack)
    tags = re.findall(r"<([a-z0-9]+)([^>]*)>", html.lower())
    # only harmless tags, no event handler attributes, no script-bearing links
    assert {name for name, _ in tags} <= {"p", "a", "code", "em", "strong"}
    for _, attributes in tags:
        assert not re.search(r"\son[a-z]+\s*=", attributes)
        assert not re.search(r"href\s*=\s*[\"']?\s*(javascript|data|vbscript):", attributes)


def test_markdown_still_formats_safely():
    html = render_markdown("**bold** `code` [site](https://example.com)\n\n- a\n- b")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">site</a>' in html
    assert "<li>a</li>" in html


def test_who_may_comment_follows_the_role_on_the_change_sets_project(setup):
    from accounts.services import project_role_set

    changeset = _open(setup, {"a.txt": LINES})
    reader = MembershipFactory(workspace=changeset.workspace, role=Role.READER).user
    reviewer = MembershipFactory(workspace=changeset.workspace, role=Role.REVIEWER).user
    # a reader made reviewer on this project, a reviewer made reader on it
    project_role_set(project=changeset.project, user=reader, role=Role.REVIEWER, actor="test")
    project_role_set(project=changeset.project, user=reviewer, role=Role.READER, actor="test")

    assert comments.may_comment(Principal(user=reader), changeset)
    assert not comments.may_comment(Principal(user=reviewer), changeset)
    with pytest.raises(NotAllowed):
        comments.comment_add(
            changeset=changeset,
            principal=Principal(user=reviewer),
            body="lgtm?",
            path="a.txt",
            side="new",
            first_line=1,
            line_count=1,
        )
