"""Reads for the review pages and API, scoped to what a principal may see."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db.models import Prefetch, QuerySet
from django.db.models.fields.json import KeyTransform

import gitops
from accounts.models import Workspace
from accounts.permissions import Principal, visible_workspaces
from orchestration import gitflow
from orchestration.models import AgentRun, Project
from review.diffs.fragments import DiffRef
from review.models import (
    Approval,
    ApprovalKind,
    ApprovalState,
    ChangeSet,
    CommentPlacement,
    ReviewComment,
    Revision,
)


def changesets_for(principal: Principal) -> QuerySet[ChangeSet]:
    return ChangeSet.objects.filter(workspace__in=visible_workspaces(principal)).select_related(
        "project", "feature", "workspace"
    )


def changeset_for(principal: Principal, code) -> ChangeSet | None:
    return changesets_for(principal).filter(code=code).first()


def revision_of(
    changeset: ChangeSet, number: int | None, *, with_files: bool = True
) -> Revision | None:
    revisions = changeset.revisions.all() if with_files else changeset.revisions.defer("files")
    if number is None:
        return revisions.order_by("-number").first()
    return revisions.filter(number=number).first()


# Finding a project's repository runs git twice (is it there, is it a repository root):
# every diff fragment needs it, cached or not, so each process remembers it for a while.
REPOSITORY_SECONDS = 30.0
_repositories: dict[tuple, tuple[Path, float]] = {}


def repository(project: Project) -> Path:
    key = (project.pk, project.repo_path, project.repo_url)
    found = _repositories.get(key)
    now = time.monotonic()
    if found is None or found[1] < now:
        found = (gitflow.repository(project), now + REPOSITORY_SECONDS)
        _repositories[key] = found
    return found[0]


def diff_ref(changeset: ChangeSet, revision: Revision, since: Revision | None) -> DiffRef:
    """What a page shows: a revision against its base, or an interdiff between revisions."""
    repo = repository(changeset.project)
    if since is None:
        return DiffRef(repo, revision.base_sha, revision.head_sha)
    return DiffRef(repo, since.head_sha, revision.head_sha)


def revision_file(revision: Revision, index: int) -> dict | None:
    """One entry of a revision's file list, read out of the JSON by the database."""
    return (
        Revision.objects.filter(pk=revision.pk)
        .annotate(entry=KeyTransform(str(index), "files"))
        .values_list("entry", flat=True)
        .first()
    )


def interdiff_files(ref: DiffRef, revision: Revision, since: Revision) -> list[dict]:
    """Files that changed between two revisions, limited to the change set's own files (so
    a base that moved meanwhile does not fill the interdiff with main's changes)."""
    from review.diffs.parse import file_entries

    ours = {e["path"] for e in revision.files} | {e["path"] for e in since.files}
    ours |= {e["old_path"] for e in revision.files + since.files if e.get("old_path")}
    return [
        entry.as_json()
        for entry in file_entries(ref.repo, ref.base, ref.head)
        if entry.path in ours or (entry.old_path or "") in ours
    ]


def thread_queryset() -> QuerySet[ReviewComment]:
    replies = ReviewComment.objects.order_by("created_at", "id").select_related("addressed_by_run")
    return ReviewComment.objects.select_related("revision", "addressed_by_run").prefetch_related(
        Prefetch("replies", queryset=replies)
    )


def placements_for(revision: Revision, path: str | None = None) -> list[CommentPlacement]:
    """The threads shown on `revision` (optionally one file), with their replies."""
    placements = CommentPlacement.objects.filter(revision=revision)
    if path is not None:
        placements = placements.filter(path=path)
    return list(
        # Not select_related("comment") as well: a relation already joined is not
        # prefetched again, and the threads' replies would then be fetched one by one.
        placements.prefetch_related(Prefetch("comment", queryset=thread_queryset())).order_by(
            "path", "first_line", "comment_id"
        )
    )


def thread_counts(revision: Revision) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for path in CommentPlacement.objects.filter(revision=revision).values_list("path", flat=True):
        counts[path] += 1
    return counts


def outdated_threads(changeset: ChangeSet, revision: Revision) -> list[ReviewComment]:
    """Threads written on this or an earlier revision whose lines are gone here."""
    return list(
        thread_queryset()
        .filter(
            changeset=changeset,
            parent__isnull=True,
            revision__number__lte=revision.number,
        )
        .exclude(placements__revision=revision)
        .order_by("-created_at")
    )


def approvals_of(changeset: ChangeSet) -> list[Approval]:
    return list(
        Approval.objects.filter(feature_id=changeset.feature_id)
        .select_related("revision", "subtask", "decided_by")
        .order_by("-created_at")
    )


def pending_approvals(workspace: Workspace) -> QuerySet[Approval]:
    return (
        Approval.objects.filter(workspace=workspace, state=ApprovalState.PENDING)
        .select_related("feature", "subtask", "changeset", "revision")
        .order_by("created_at")
    )


def live_token(changeset: ChangeSet) -> str:
    """Changes whenever what the open page shows may have changed (threads, state, gates)."""
    row = ChangeSet.objects.filter(pk=changeset.pk).values(
        "comments_version", "status", "head_sha", "merge_note"
    )[0]
    gate_states = Approval.objects.filter(feature_id=changeset.feature_id).values_list(
        "state", flat=True
    )
    text = "\0".join([row["merge_note"], *sorted(gate_states)])
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{row['comments_version']}.{row['status']}.{row['head_sha'][:8]}.{digest}"


# --- the git panel ------------------------------------------------------------------------


@dataclass
class BranchRow:
    name: str
    ahead: int
    behind: int
    changeset: ChangeSet | None = None


@dataclass
class CommitRow:
    sha: str
    subject: str
    author: str
    is_agent: bool
    date: datetime
    run: AgentRun | None = None


@dataclass
class ProjectGit:
    project: Project
    branches: list[BranchRow] = field(default_factory=list)
    commits: list[CommitRow] = field(default_factory=list)
    problem: str = ""


def git_panel(workspace: Workspace, *, commits: int = 15) -> list[ProjectGit]:
    panels = []
    changesets = {
        (cs.project_id, cs.branch): cs
        for cs in ChangeSet.objects.filter(workspace=workspace).select_related("feature")
    }
    for project in Project.objects.filter(workspace=workspace).order_by("name"):
        panel = ProjectGit(project)
        try:
            repo = gitflow.repository(project)
            panel.branches = _branches(repo, project, changesets)
            panel.commits = _commits(repo, project.default_branch, workspace, commits)
        except gitops.GitError as exc:
            panel.problem = str(exc)
        panels.append(panel)
    return panels


def _branches(repo, project: Project, changesets: dict) -> list[BranchRow]:
    names = gitops.run_git(
        repo, "for-each-ref", "--format=%(refname:short)", "--sort=-committerdate", "refs/heads"
    ).stdout.split()
    rows = []
    for name in names[:50]:
        if name == project.default_branch:
            continue
        ahead, behind = 0, 0
        with contextlib.suppress(gitops.GitError):
            ahead, behind = gitops.ahead_behind(repo, name, project.default_branch)
        rows.append(BranchRow(name, ahead, behind, changesets.get((project.pk, name))))
    return rows


def _commits(repo, branch: str, workspace: Workspace, limit: int) -> list[CommitRow]:
    if not gitops.branch_exists(repo, branch):
        return []
    log = gitops.log(repo, branch, limit)
    runs = {
        str(run.code): run
        for run in AgentRun.objects.filter(
            workspace=workspace, code__in=[c.run_code for c in log if c.run_code]
        )
    }
    return [
        CommitRow(
            sha=commit.sha,
            subject=commit.subject,
            author=commit.author_name,
            is_agent=commit.run_code is not None,
            date=commit.date,
            run=runs.get(commit.run_code or ""),
        )
        for commit in log
    ]


def plan_approvals_waiting(workspace: Workspace) -> QuerySet[Approval]:
    return pending_approvals(workspace).filter(kind=ApprovalKind.PLAN)
