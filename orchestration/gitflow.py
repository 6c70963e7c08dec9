"""How the orchestrator uses git: one repository per project, one branch per feature, a
fresh detached worktree per agent run or test run, and publication by compare-and-swap.

Agent runs of different subtasks may work on one feature branch at the same time. Each
works on a detached worktree at the branch head it started from, commits there, and then
moves the branch with `git update-ref <branch> <new> <old>`: if another run moved the branch
meanwhile, the commit is rebased onto the new head and the swap is tried again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

import gitops
from orchestration.models import AgentRun, Project

AGENT_AUTHORS = {
    "pm": ("Orion (CodeMaestro agent)", "orion@agents.codemaestro.local"),
    "tester": ("Tara (CodeMaestro agent)", "tara@agents.codemaestro.local"),
    "developer": ("Devon (CodeMaestro agent)", "devon@agents.codemaestro.local"),
}
PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True)
class Checkout:
    path: Path
    base_sha: str


def repository(project: Project) -> Path:
    """The project's repository on this machine, cloned into the data dir when remote."""
    if project.repo_path:
        return gitops.ensure_repository(project.repo_path, url=project.repo_url or None)
    if not project.repo_url:
        raise gitops.GitError(f"project {project.name} has neither a repository path nor a URL")
    target = Path(settings.DATA_DIR) / "repos" / str(project.workspace.code) / project.slug
    return gitops.ensure_repository(target, url=project.repo_url)


def worktrees_root() -> Path:
    root = Path(settings.DATA_DIR) / "worktrees"
    root.mkdir(parents=True, exist_ok=True)
    return root


def ensure_feature_branch(project: Project, branch: str) -> str:
    repo = repository(project)
    gitops.ensure_branch(repo, branch, project.default_branch)
    return gitops.head_commit(repo, branch)


@contextmanager
def checkout(project: Project, ref: str, name: str) -> Iterator[Checkout]:
    """A fresh detached worktree at `ref`, removed afterwards whatever happened in it."""
    repo = repository(project)
    base = gitops.head_commit(repo, ref)
    _clear_leftover(repo, worktrees_root() / name)
    with gitops.temporary_worktree(repo, base, worktrees_root(), name, detached=True) as path:
        yield Checkout(path=path, base_sha=base)


def _clear_leftover(repo: Path, path: Path) -> None:
    """A worker killed mid-run leaves its worktree behind; the run's next attempt reuses the
    name, so the leftover goes first."""
    if not path.exists():
        return
    try:
        gitops.worktree_remove(repo, path)
    except gitops.GitError:
        shutil.rmtree(path, ignore_errors=True)  # ours (under the data dir), not git's
        gitops.run_git(repo, "worktree", "prune")


def commit_message(run: AgentRun, summary: str) -> str:
    subject = f"{run.get_role_display().split(' ')[0]}: {summary}"[:72]
    body = f"{run.get_step_display()} for {run.subtask.key if run.subtask else 'feature'}"
    return f"{subject}\n\n{body} (attempt {run.attempt})\n\n{gitops.run_trailer(run.code)}\n"


def publish(
    project: Project, work: Checkout, branch: str, run: AgentRun, summary: str
) -> str | None:
    """Commit the run's changes and move `branch` to them; None when nothing changed."""
    repo = repository(project)
    author, email = AGENT_AUTHORS.get(run.role, ("CodeMaestro agent", "agent@codemaestro.local"))
    sha = gitops.commit_all(work.path, commit_message(run, summary), author, email)
    if sha is None:
        return None
    expected = work.base_sha
    for _ in range(PUBLISH_ATTEMPTS):
        current = gitops.head_commit(repo, branch)
        if current == expected:
            try:
                gitops.run_git(repo, "update-ref", f"refs/heads/{branch}", sha, expected)
                return sha
            except gitops.GitError:
                continue  # moved between our read and the swap: look again
        _rebase_onto(work.path, current)
        sha, expected = gitops.head_commit(work.path), current
    raise gitops.GitError(f"{branch} kept moving; could not publish after {PUBLISH_ATTEMPTS} tries")


def _rebase_onto(worktree: Path, new_base: str) -> None:
    try:
        gitops.run_git(worktree, "rebase", "--quiet", new_base)
    except gitops.GitError as exc:
        gitops.run_git(worktree, "rebase", "--abort", ok_codes=(0, 1, 128))
        raise gitops.GitError(
            "the run's changes conflict with changes published meanwhile on the branch",
            command=exc.command,
            returncode=exc.returncode,
            stderr=exc.stderr,
        ) from exc


def changed_paths(project: Project, base: str, head: str) -> list[str]:
    """Paths changed between two commits (what a run added to the branch)."""
    repo = repository(project)
    result = gitops.run_git(repo, "diff", "--name-only", "--no-renames", base, head)
    return [line for line in result.stdout.splitlines() if line]


def recorded_commit(project: Project, branch: str, run: AgentRun) -> str | None:
    """The commit a run published, if it did — so a completion lost in a crash is not lost."""
    commits = gitops.commits_for_run(repository(project), branch, run.code)
    return commits[0].sha if commits else None
