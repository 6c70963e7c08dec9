"""Merging an approved change set into the project's default branch, through its gates.

Runs in a Celery task (review.merge_changeset), scheduled on commit after every approval
and subtask completion, and safe to run any number of times. Nothing lands unless, at that
moment: every subtask of the feature is completed, the merge gate of the current head is
approved, and the tests passed on exactly what lands:

- main has not moved since the branch forked: what lands is the tested head itself (by
  fast-forward, or as a merge commit with the head's tree);
- main moved: git merges the two in memory (merge-tree); conflicts mark the change set
  conflicted with the files named; otherwise the merge commit is tested first, and only a
  green run lets main move to it. A project merging by fast-forward only waits instead.

Main moves by a fast-forward to the prepared commit, so a main that moved again meanwhile
refuses the move instead of receiving something untested.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

import gitops
from audit.services import record_audit
from orchestration import gitflow
from orchestration.models import (
    EventKind,
    SubtaskStatus,
    TestRun,
    TestRunPurpose,
    TestRunStatus,
)
from orchestration.services import testing
from orchestration.services.events import event_record
from review.models import ApprovalKind, ApprovalState, ChangeSet, ChangeSetStatus
from review.services.approvals import tests_green_at
from review.services.changesets import changeset_update_for, latest_revision, lock_changeset

log = logging.getLogger(__name__)
ACTOR = "orchestrator"
WORKER = "review-merge"


@dataclass(frozen=True)
class Outcome:
    merged: bool
    message: str


def changeset_merge(changeset_id: int) -> Outcome:
    """Merge the change set if every gate holds now; otherwise say (and record) why not."""
    changeset = ChangeSet.objects.select_related("project", "feature").get(pk=changeset_id)
    if changeset.status == ChangeSetStatus.MERGED:
        return Outcome(True, "already merged")
    repo = gitflow.repository(changeset.project)
    if gitops.head_commit(repo, changeset.branch) != changeset.head_sha:
        # A push the change set has not seen: it becomes a revision needing its own gate.
        with transaction.atomic():
            changeset_update_for(changeset.feature)
        return Outcome(False, "the branch moved; the new revision needs approval")
    waiting = merge_blockers(changeset)
    if waiting:
        return _wait(changeset, "; ".join(waiting))
    return _land(changeset, repo)


def merge_blockers(changeset: ChangeSet) -> list[str]:
    """Why the change set cannot merge now (empty when it can, tests aside for a moved main)."""
    reasons = []
    if changeset.status != ChangeSetStatus.OPEN:
        reasons.append(f"the change set is {changeset.status}")
    unfinished = list(
        changeset.feature.subtasks.exclude(status=SubtaskStatus.COMPLETED)
        .order_by("key")
        .values_list("key", flat=True)
    )
    if unfinished:
        reasons.append(f"subtasks not completed: {', '.join(unfinished)}")
    revision = latest_revision(changeset)
    gate = revision.approvals.filter(kind=ApprovalKind.MERGE).first() if revision else None
    if gate is None or gate.state != ApprovalState.APPROVED:
        reasons.append(f"revision {revision.number if revision else '?'} is not approved")
    plans = changeset.feature.approvals.filter(kind=ApprovalKind.PLAN).exclude(
        state__in=[ApprovalState.APPROVED, ApprovalState.DISMISSED]
    )
    if plans.exists():
        reasons.append("a high-risk plan is not approved")
    return reasons


def _land(changeset: ChangeSet, repo: Path) -> Outcome:
    head, base_branch = changeset.head_sha, changeset.base_branch
    main = gitops.head_commit(repo, base_branch)
    mode = (changeset.project.policy or {}).get("merge", "merge_commit")
    if _is_ancestor(repo, main, head):
        if not _ensure_green(changeset, repo, head):
            return _wait(changeset, f"tests are not green on the head {head[:8]}")
        target = head if mode == "fast_forward" else _merge_commit(repo, changeset, main, head)
    elif mode == "fast_forward":
        return _wait(
            changeset,
            f"{base_branch} moved and this project merges by fast-forward only: "
            "the branch must be brought up to date first",
        )
    else:
        tree, conflicts = _merge_tree(repo, main, head)
        if conflicts:
            return _conflicted(changeset, conflicts)
        target = _merge_commit(repo, changeset, main, head, tree=tree)
        if not _ensure_green(changeset, repo, target):
            return _wait(
                changeset,
                f"{base_branch} moved; the tests fail on the merge with it ({target[:8]})",
            )
    try:
        gitops.merge(repo, target, base_branch, "fast_forward")
    except gitops.GitError as exc:
        return _wait(changeset, f"{base_branch} moved during the merge; will try again ({exc})")
    return _merged(changeset, target)


def _ensure_green(changeset: ChangeSet, repo: Path, sha: str) -> bool:
    """Green on exactly `sha`; a commit never tested (a moved main) is tested now."""
    if tests_green_at(changeset, sha):
        return True
    tried = TestRun.objects.filter(
        feature_id=changeset.feature_id, purpose=TestRunPurpose.VERIFY, commit_sha=sha
    ).exists()
    if tried:
        return False  # red (or broken) on this commit: nothing merges on red tests
    test_run = TestRun.objects.create(
        workspace_id=changeset.workspace_id,
        project_id=changeset.project_id,
        feature_id=changeset.feature_id,
        purpose=TestRunPurpose.VERIFY,
        branch=sha,
    )
    testing.testrun_execute(test_run.pk, worker=WORKER)
    test_run.refresh_from_db()
    return test_run.status == TestRunStatus.PASSED and test_run.commit_sha == sha


def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = gitops.run_git(
        repo, "merge-base", "--is-ancestor", ancestor, descendant, ok_codes=(0, 1)
    )
    return result.returncode == 0


def _merge_tree(repo: Path, main: str, head: str) -> tuple[str, list[str]]:
    """Merge in memory (no worktree): the result's tree, or the conflicting files."""
    result = gitops.run_git(
        repo, "merge-tree", "--write-tree", "--name-only", "-z", main, head, ok_codes=(0, 1)
    )
    fields = result.stdout.split("\0")
    tree = fields[0].strip()
    if result.returncode == 0:
        return tree, []
    files = []
    for name in fields[1:]:
        if not name:
            break  # an empty field ends the list of conflicted files
        if name not in files:
            files.append(name)
    return tree, files


def _merge_commit(
    repo: Path, changeset: ChangeSet, main: str, head: str, *, tree: str | None = None
) -> str:
    tree = tree or gitops.run_git(repo, "rev-parse", f"{head}^{{tree}}").stdout.strip()
    approver = _approver(changeset) or "?"
    message = (
        f"Merge {changeset.branch} into {changeset.base_branch}\n\n"
        f"{changeset.feature.title}\n\n"
        f"Approved-by: {approver}\nCodeMaestro-ChangeSet: {changeset.code}\n"
    )
    result = gitops.run_git(
        repo, "commit-tree", tree, "-p", main, "-p", head, "-F", "-", stdin=message
    )
    return result.stdout.strip()


def _wait(changeset: ChangeSet, why: str) -> Outcome:
    with transaction.atomic():
        locked = lock_changeset(changeset.pk)
        if locked.merge_note != why:
            ChangeSet.objects.filter(pk=locked.pk).update(merge_note=why)
            event_record(
                workspace_id=locked.workspace_id,
                kind=EventKind.REVIEW_MERGE_WAITING,
                message=f"{locked.branch}: merge waits: {why}",
                actor=ACTOR,
                feature=changeset.feature,
                data={"changeset": str(locked.code), "reason": why},
            )
    return Outcome(False, why)


def _conflicted(changeset: ChangeSet, files: list[str]) -> Outcome:
    with transaction.atomic():
        locked = lock_changeset(changeset.pk)
        if locked.status == ChangeSetStatus.OPEN:
            locked.mark_conflicted()
            locked.conflict_files = files
            locked.merge_note = f"conflicts with {locked.base_branch} in: {', '.join(files)}"
            locked.save()
            event_record(
                workspace_id=locked.workspace_id,
                kind=EventKind.REVIEW_CONFLICT,
                message=f"{locked.branch}: {locked.merge_note}",
                actor=ACTOR,
                feature=changeset.feature,
                data={"changeset": str(locked.code), "files": files},
            )
    return Outcome(False, f"conflicts in: {', '.join(files)}")


def _merged(changeset: ChangeSet, sha: str) -> Outcome:
    with transaction.atomic():
        locked = lock_changeset(changeset.pk)
        if locked.status != ChangeSetStatus.MERGED:
            locked.mark_merged()
            locked.merged_sha = sha
            locked.save()
            event_record(
                workspace_id=locked.workspace_id,
                kind=EventKind.REVIEW_MERGED,
                message=f"{locked.branch} merged into {locked.base_branch} ({sha[:8]})",
                actor=ACTOR,
                feature=changeset.feature,
                data={"changeset": str(locked.code), "sha": sha},
            )
            record_audit(
                workspace=locked.workspace,
                actor="system",
                action="merge.done",
                target=f"changeset:{locked.code}",
                details={
                    "branch": locked.branch,
                    "into": locked.base_branch,
                    "sha": sha,
                    "head_sha": locked.head_sha,
                    "approved_by": _approver(locked),
                },
            )
    return Outcome(True, f"merged as {sha[:8]}")


def _approver(changeset: ChangeSet) -> str:
    gate = latest_revision(changeset).approvals.filter(kind=ApprovalKind.MERGE).first()
    return gate.decided_by_label if gate else ""
