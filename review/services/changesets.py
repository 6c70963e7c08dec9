"""Change sets: opened and updated from the feature branch, one Revision per new push.

A new revision carries every thread forward when its lines still exist (a placement row
on the new revision), leaves the others outdated (no placement), dismisses the approvals
given to earlier heads, and records which developer attempt answered the open comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max

import gitops
from orchestration import gitflow
from orchestration.models import AgentRun, EventKind, FeatureRequest, RunStep
from orchestration.services.events import event_record
from review import risk
from review.diffs.parse import Hunk, file_entries, merge_base, parse_diff
from review.models import (
    Approval,
    ApprovalKind,
    ApprovalState,
    ChangeSet,
    ChangeSetStatus,
    CommentPlacement,
    CommentState,
    ReviewComment,
    Revision,
    Side,
)

ACTOR = "orchestrator"
ROUTE_SCAN_MAX_CHARS = 20_000_000  # past this the diff is not scanned for new routes


@dataclass(frozen=True)
class BranchState:
    repo: Path
    head: str
    base: str  # the merge base of head and the project's default branch


def branch_state(feature: FeatureRequest) -> BranchState | None:
    """Where the feature branch is now, or None when it does not exist yet."""
    project = feature.project
    repo = gitflow.repository(project)
    if not gitops.branch_exists(repo, feature.branch):
        return None
    head = gitops.head_commit(repo, feature.branch)
    return BranchState(repo, head, merge_base(repo, project.default_branch, head))


def lock_changeset(pk: int) -> ChangeSet:
    return ChangeSet.objects.select_for_update(of=("self",)).get(pk=pk)


def latest_revision(changeset: ChangeSet) -> Revision | None:
    return changeset.revisions.order_by("-number").first()


def changeset_update_for(feature: FeatureRequest, *, actor: str = ACTOR) -> ChangeSet | None:
    """Open the feature's change set, or add a revision if the branch moved (caller's
    transaction). Returns None when the feature has no branch yet."""
    state = branch_state(feature)
    if state is None:
        return None
    changeset = _locked_changeset(feature)
    latest = latest_revision(changeset)
    if latest and (latest.head_sha, latest.base_sha) == (state.head, state.base):
        return changeset
    revision = _add_revision(changeset, latest, state)
    if latest is not None:
        carry_comments(changeset, latest, revision, state.repo)
        _dismiss_earlier_approvals(changeset, revision)
    _mark_addressed(changeset, revision)
    assessment = assess(changeset, revision, state.repo)
    changeset.base_sha, changeset.head_sha = state.base, state.head
    changeset.risk, changeset.risk_reasons = assessment.tier, assessment.reasons_json()
    if changeset.status == ChangeSetStatus.CONFLICTED:
        changeset.reopen()  # a new push may resolve it; the merge checks again
    changeset.save()
    _record_revision(changeset, revision, actor)
    return changeset


@transaction.atomic(durable=True)
def changeset_refresh(*, feature: FeatureRequest, actor: str) -> ChangeSet | None:
    """Bring the change set up to date with its branch (a push made outside the cycle)."""
    return changeset_update_for(feature, actor=actor)


def _locked_changeset(feature: FeatureRequest) -> ChangeSet:
    found = ChangeSet.objects.select_for_update(of=("self",)).filter(feature=feature).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            created = ChangeSet.objects.create(
                workspace_id=feature.workspace_id,
                project_id=feature.project_id,
                feature=feature,
                branch=feature.branch,
                base_branch=feature.project.default_branch,
            )
    except IntegrityError:  # opened concurrently by another handoff
        return ChangeSet.objects.select_for_update(of=("self",)).get(feature=feature)
    return lock_changeset(created.pk)


def _add_revision(changeset: ChangeSet, latest: Revision | None, state: BranchState) -> Revision:
    entries = [entry.as_json() for entry in file_entries(state.repo, state.base, state.head)]
    run, pusher, user = _pusher(changeset, state)
    number = (changeset.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    return Revision.objects.create(
        changeset=changeset,
        number=number,
        base_sha=state.base,
        head_sha=state.head,
        files=entries,
        files_changed=len(entries),
        additions=sum(entry["additions"] for entry in entries),
        deletions=sum(entry["deletions"] for entry in entries),
        created_by_run=run,
        attempt=run.attempt if run else None,
        pushed_by=pusher,
        pushed_by_user=user,
    )


def _pusher(changeset: ChangeSet, state: BranchState):
    """Who made the head commit: an agent run (from its trailer) or a person."""
    commit = gitops.log(state.repo, state.head, 1)[0]
    run = None
    if commit.run_code:
        run = AgentRun.objects.filter(
            code=commit.run_code, workspace_id=changeset.workspace_id
        ).first()
    if run is not None:
        return run, f"agent:{commit.author_name}", None
    user = (
        get_user_model()
        .objects.filter(
            email__iexact=commit.author_email,
            memberships__workspace_id=changeset.workspace_id,
        )
        .exclude(email="")
        .first()
    )
    return None, f"person:{commit.author_name} <{commit.author_email}>", user


def assess(changeset: ChangeSet, revision: Revision, repo: Path) -> risk.Assessment:
    declared = [
        (tier, f"subtask {key}")
        for key, tier in changeset.feature.subtasks.values_list("key", "risk").order_by("key")
    ]
    return risk.classify(
        changeset.project,
        revision.files,
        declared=declared,
        added_routes=_routes(repo, revision),
    )


def _routes(repo: Path, revision: Revision) -> list[str]:
    if not revision.files or revision.additions > 200_000:
        return []
    text = gitops.run_git(
        repo, "diff", "--unified=0", "--no-color", "--no-ext-diff", "--no-textconv",
        "--src-prefix=a/", "--dst-prefix=b/", revision.base_sha, revision.head_sha, "--",
    ).stdout  # fmt: skip
    return risk.routes_added(text[:ROUTE_SCAN_MAX_CHARS])


def _dismiss_earlier_approvals(changeset: ChangeSet, revision: Revision) -> None:
    """A new push dismisses what was approved (or waiting) for an earlier head."""
    stale = Approval.objects.select_for_update().filter(
        changeset=changeset,
        kind=ApprovalKind.MERGE,
        state__in=[ApprovalState.PENDING, ApprovalState.APPROVED],
    )
    for approval in stale.exclude(revision=revision):
        approval.dismiss(note=f"dismissed by revision {revision.number} (a new push)")
        approval.save()
        event_record(
            workspace_id=changeset.workspace_id,
            kind=EventKind.REVIEW_APPROVAL,
            message=f"{changeset.branch}: approval of revision {approval.revision.number} "
            f"dismissed by a new push",
            actor=ACTOR,
            feature=changeset.feature,
            data={"approval": str(approval.code), "state": approval.state},
        )


def _mark_addressed(changeset: ChangeSet, revision: Revision) -> None:
    """The developer run that pushed this revision had the open comments in its briefing."""
    run = revision.created_by_run
    if run is None or run.step != RunStep.IMPLEMENTATION:
        return
    ReviewComment.objects.filter(
        changeset=changeset,
        parent__isnull=True,
        state=CommentState.OPEN,
        addressed_by_run__isnull=True,
        created_at__lt=run.created_at,
    ).update(addressed_by_run=run, addressed_attempt=run.attempt)


def _record_revision(changeset: ChangeSet, revision: Revision, actor: str) -> None:
    event_record(
        workspace_id=changeset.workspace_id,
        kind=EventKind.REVIEW_REVISION,
        message=f"{changeset.branch}: revision {revision.number} ({revision.head_sha[:8]}) "
        f"by {revision.pushed_by}: {revision.files_changed} files, +{revision.additions} "
        f"-{revision.deletions}; risk {changeset.risk}",
        actor=actor,
        feature=changeset.feature,
        data={
            "changeset": str(changeset.code),
            "revision": revision.number,
            "head": revision.head_sha,
            "risk": changeset.risk,
        },
    )


# --- carrying threads forward -------------------------------------------------------------


def carry_comments(changeset: ChangeSet, previous: Revision, revision: Revision, repo: Path) -> int:
    """Place each thread shown on `previous` on `revision` where its lines still exist."""
    placements = list(
        CommentPlacement.objects.filter(revision=previous).exclude(
            comment__state=CommentState.DROPPED
        )
    )
    if not placements:
        return 0
    in_revision = {entry["path"]: entry for entry in revision.files}
    maps = {
        Side.NEW: _line_maps(repo, previous.head_sha, revision.head_sha),
        Side.OLD: _line_maps(repo, previous.base_sha, revision.base_sha),
    }
    carried = []
    for placement in placements:
        moved = _carry(placement, maps[placement.side], in_revision)
        if moved is not None:
            path, first = moved
            carried.append(
                CommentPlacement(
                    comment_id=placement.comment_id,
                    revision=revision,
                    path=path,
                    side=placement.side,
                    first_line=first,
                    line_count=placement.line_count,
                )
            )
    CommentPlacement.objects.bulk_create(carried, ignore_conflicts=True)
    return len(carried)


@dataclass(frozen=True)
class _FileMap:
    new_path: str | None  # None: the file is gone
    hunks: list[Hunk]


def _line_maps(repo: Path, old: str, new: str) -> dict[str, _FileMap]:
    """For each file that changed from `old` to `new`: where it went and its -U0 hunks."""
    if old == new:
        return {}
    text = gitops.run_git(
        repo, "diff", "--unified=0", "--find-renames", "--no-color", "--no-ext-diff",
        "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", old, new, "--",
    ).stdout  # fmt: skip
    maps = {}
    for file in parse_diff(text):
        if file.status == "added":
            continue
        gone = file.status == "deleted"
        maps[file.old_path] = _FileMap(None if gone else file.path, file.hunks)
    return maps


def _carry(placement, maps: dict[str, _FileMap], in_revision: dict) -> tuple[str, int] | None:
    # The comment's `path` is the file's path in the change set; its old side was read at
    # the entry's old path.
    file_map = maps.get(_side_path(placement, in_revision))
    if file_map is None:
        path, first = placement.path, placement.first_line
    else:
        if file_map.new_path is None:
            return None
        first = map_range(file_map.hunks, placement.first_line, placement.last_line)
        if first is None:
            return None
        path = file_map.new_path if placement.side == Side.NEW else placement.path
    entry = in_revision.get(path)
    if entry is None:
        return None  # the file no longer differs from the base: nothing to show it on
    if placement.side == Side.OLD and entry["status"] == "added":
        return None
    if placement.side == Side.NEW and entry["status"] == "deleted":
        return None
    return path, first


def _side_path(placement, in_revision: dict) -> str:
    if placement.side == Side.OLD:
        entry = in_revision.get(placement.path)
        if entry and entry.get("old_path"):
            return entry["old_path"]
    return placement.path


def map_range(hunks: list[Hunk], first: int, last: int) -> int | None:
    """Where lines first..last of the old file are in the new one; None if any changed.

    `hunks` come from a -U0 diff, sorted by position. An insertion between two lines of the
    range changes the block as much as an edit inside it does.
    """
    shift = 0
    for hunk in hunks:
        if hunk.old_count == 0:  # lines inserted after old line `old_start`
            if hunk.old_start < first:
                shift += hunk.new_count
            elif hunk.old_start < last:
                return None
            else:
                break
            continue
        hunk_last = hunk.old_start + hunk.old_count - 1
        if hunk_last < first:
            shift += hunk.new_count - hunk.old_count
        elif hunk.old_start > last:
            break
        else:
            return None
    return first + shift
