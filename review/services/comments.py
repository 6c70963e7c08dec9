"""Inline review comments: threads on the latest revision, replies, open/resolved/dropped.

Every change bumps the change set's `comments_version` (ETags, the live poll) and records a
`review.comment` Event, which the realtime layer announces to the workspace's pages.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django_fsm import can_proceed

from accounts.permissions import Action, Principal, can
from orchestration.errors import Conflict, InvalidInput, NotAllowed, TransitionRefused
from orchestration.models import EventKind
from orchestration.services.events import event_record
from review.models import ChangeSet, CommentPlacement, ReviewComment, Revision, Side
from review.services.changesets import latest_revision, lock_changeset

MAX_BODY = 20_000
MAX_LINES = 1_000
COMMENT_TRANSITIONS = ("resolve", "drop", "reopen")


def may_comment(principal: Principal, changeset: ChangeSet) -> bool:
    """People who review or author (on the change set's project) may open threads; agents
    and readers may not."""
    if principal.is_agent:
        return False
    return can(principal, Action.REVIEW, changeset) or can(principal, Action.EDIT, changeset)


def may_reply(principal: Principal, changeset: ChangeSet) -> bool:
    """Agents may answer a thread (say what they changed), never open or settle one."""
    return may_comment(principal, changeset) or (
        principal.is_agent and can(principal, Action.WORK, changeset)
    )


@transaction.atomic(durable=True)
def comment_add(
    *,
    changeset: ChangeSet,
    principal: Principal,
    body: str,
    path: str = "",
    side: str = Side.NEW,
    first_line: int = 0,
    line_count: int = 1,
    parent: ReviewComment | None = None,
    revision_number: int | None = None,
) -> ReviewComment:
    """Open a thread on lines of the latest revision, or reply to a thread."""
    changeset = lock_changeset(changeset.pk)
    body = (body or "").strip()
    if not body:
        raise InvalidInput("the comment is empty", field="body")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the comment is longer than {MAX_BODY} characters", field="body")
    if parent is not None:
        comment = _reply(changeset, principal, body, parent)
    else:
        comment = _thread(
            changeset, principal, body, path, side, first_line, line_count, revision_number
        )
    _touched(changeset, comment, "replied" if parent is not None else "commented", principal)
    return comment


def _thread(changeset, principal, body, path, side, first_line, line_count, revision_number):
    if not may_comment(principal, changeset):
        raise NotAllowed("your role in this workspace does not allow opening review threads")
    revision = latest_revision(changeset)
    if revision is None:
        raise Conflict("the change set has no revision yet")
    if revision_number is not None and revision_number != revision.number:
        raise Conflict(
            f"revision {revision_number} is not the latest ({revision.number}); "
            "comment on the latest revision",
            latest=revision.number,
        )
    _check_anchor(revision, path, side, first_line, line_count)
    comment = ReviewComment.objects.create(
        changeset=changeset,
        revision=revision,
        path=path,
        side=side,
        first_line=first_line,
        line_count=line_count,
        body=body,
        author=_person(principal),
        author_label=principal.label,
    )
    CommentPlacement.objects.create(
        comment=comment,
        revision=revision,
        path=path,
        side=side,
        first_line=first_line,
        line_count=line_count,
    )
    return comment


def _check_anchor(revision: Revision, path: str, side: str, first: int, count: int) -> None:
    if side not in Side.values:
        raise InvalidInput(f"side must be one of {', '.join(Side.values)}", field="side")
    entry = next((e for e in revision.files if e["path"] == path), None)
    if entry is None:
        raise InvalidInput(f"{path!r} is not a file of revision {revision.number}", field="path")
    if entry["binary"]:
        raise InvalidInput("binary files have no lines to comment on", field="path")
    if side == Side.OLD and entry["status"] == "added":
        raise InvalidInput("an added file has no old side", field="side")
    if side == Side.NEW and entry["status"] == "deleted":
        raise InvalidInput("a deleted file has no new side", field="side")
    if not isinstance(first, int) or first < 1:
        raise InvalidInput("first_line starts at 1", field="first_line")
    if not isinstance(count, int) or not 1 <= count <= MAX_LINES:
        raise InvalidInput(f"line_count must be 1 to {MAX_LINES}", field="line_count")


def _reply(changeset, principal, body, parent: ReviewComment) -> ReviewComment:
    if not may_reply(principal, changeset):
        raise NotAllowed("your role in this workspace does not allow replying")
    root = parent.parent or parent
    if root.changeset_id != changeset.pk:
        raise InvalidInput("that thread belongs to another change set", field="parent")
    return ReviewComment.objects.create(
        changeset=changeset,
        revision=root.revision,
        path=root.path,
        side=root.side,
        first_line=root.first_line,
        line_count=root.line_count,
        parent=root,
        body=body,
        author=_person(principal),
        author_label=principal.label,
    )


@transaction.atomic(durable=True)
def comment_transition(*, comment: ReviewComment, name: str, principal: Principal) -> ReviewComment:
    """Resolve, drop or reopen a thread (its author, a reviewer or an admin)."""
    if name not in COMMENT_TRANSITIONS:
        raise InvalidInput(f"unknown transition {name!r}; expected one of {COMMENT_TRANSITIONS}")
    changeset = lock_changeset(comment.changeset_id)
    comment = ReviewComment.objects.select_for_update(of=("self",)).get(pk=comment.pk)
    if comment.parent_id is not None:
        raise InvalidInput("replies follow their thread; change the thread instead")
    is_author = _person(principal) is not None and comment.author_id == principal.user.pk
    if principal.is_agent or not (is_author or can(principal, Action.REVIEW, changeset)):
        raise NotAllowed("only the thread's author, reviewers and admins settle threads")
    method = getattr(comment, name)
    if not can_proceed(method):
        raise TransitionRefused(f"cannot {name} a thread that is {comment.state}")
    method()
    comment.save()
    _touched(changeset, comment, {"resolve": "resolved", "drop": "dropped"}.get(name, name),
             principal)  # fmt: skip
    return comment


def _person(principal: Principal):
    return None if principal.is_agent else principal.user


def _touched(changeset: ChangeSet, comment: ReviewComment, verb: str, principal) -> None:
    ChangeSet.objects.filter(pk=changeset.pk).update(comments_version=F("comments_version") + 1)
    root = comment.parent or comment
    event_record(
        workspace_id=changeset.workspace_id,
        kind=EventKind.REVIEW_COMMENT,
        message=f"{principal.label} {verb} on {root.path}:{root.first_line}: {comment.body[:120]}",
        actor=principal.label,
        feature=changeset.feature,
        data={
            "changeset": str(changeset.code),
            "comment": str(comment.code),
            "thread": str(root.code),
            "path": root.path,
            "line": root.first_line,
            "state": root.state,
        },
    )
