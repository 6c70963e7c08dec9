"""Git operations for CodeMaestro, through the git binary: repositories, branches, worktrees,
commits, diffs, patches and merges. Every failure is a GitError that carries what git said.

Needs git 2.36 or later (`git worktree list -z`).
"""

from __future__ import annotations

from gitops.changes import FileStat, apply_patch, changed_files, diff, diff_stat, is_clean
from gitops.errors import GitError, MergeConflict
from gitops.history import (
    RUN_TRAILER_KEY,
    Commit,
    ahead_behind,
    commit_all,
    commits_for_run,
    log,
    run_trailer,
)
from gitops.merges import MERGE_MODES, MergeMode, merge
from gitops.repos import branch_exists, ensure_branch, ensure_repository, head_commit
from gitops.run import CLONE_TIMEOUT, DEFAULT_TIMEOUT, GitResult, run_git
from gitops.worktrees import (
    Worktree,
    temporary_worktree,
    worktree_add,
    worktree_for_branch,
    worktree_list,
    worktree_remove,
)

__all__ = [
    "CLONE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MERGE_MODES",
    "RUN_TRAILER_KEY",
    "Commit",
    "FileStat",
    "GitError",
    "GitResult",
    "MergeConflict",
    "MergeMode",
    "Worktree",
    "ahead_behind",
    "apply_patch",
    "branch_exists",
    "changed_files",
    "commit_all",
    "commits_for_run",
    "diff",
    "diff_stat",
    "ensure_branch",
    "ensure_repository",
    "head_commit",
    "is_clean",
    "log",
    "merge",
    "run_git",
    "run_trailer",
    "temporary_worktree",
    "worktree_add",
    "worktree_for_branch",
    "worktree_list",
    "worktree_remove",
]
