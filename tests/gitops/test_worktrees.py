from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gitops import (
    GitError,
    Worktree,
    ensure_branch,
    head_commit,
    is_clean,
    temporary_worktree,
    worktree_add,
    worktree_for_branch,
    worktree_list,
    worktree_remove,
)
from gitops.locks import repository_lock
from tests.gitops.gitrepo import commit_file, git_out, write


def registered_paths(repo: Path) -> list[Path]:
    return [tree.path for tree in worktree_list(repo)]


def test_worktree_add_checks_the_branch_out_in_its_own_directory(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/login", "main")

    # when
    path = worktree_add(repo, "feature/login", tmp_path / "runs", "run-1")

    # then
    assert path == tmp_path / "runs" / "run-1"
    assert git_out(path, "rev-parse", "--abbrev-ref", "HEAD") == "feature/login"
    assert (path / "README.md").read_text() == "hello\n"
    assert registered_paths(repo) == [repo, path]


def test_worktrees_of_two_branches_coexist_and_commit_independently(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/a", "main")
    ensure_branch(repo, "feature/b", "main")
    first = worktree_add(repo, "feature/a", tmp_path / "runs", "a")
    second = worktree_add(repo, "feature/b", tmp_path / "runs", "b")

    # when
    sha_a = commit_file(first, "a.txt", "a\n", "Work on a")
    sha_b = commit_file(second, "b.txt", "b\n", "Work on b")

    # then
    assert head_commit(repo, "feature/a") == sha_a
    assert head_commit(repo, "feature/b") == sha_b
    assert not (first / "b.txt").exists()
    assert not (second / "a.txt").exists()
    assert registered_paths(repo) == [repo, first, second]


def test_worktree_add_refuses_a_branch_checked_out_elsewhere(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    first = worktree_add(repo, "feature/login", tmp_path / "runs", "first")

    # when
    with pytest.raises(GitError) as caught:
        worktree_add(repo, "feature/login", tmp_path / "runs", "second")

    # then
    assert caught.value.stderr == f"fatal: 'feature/login' is already checked out at '{first}'"
    assert not (tmp_path / "runs" / "second").exists()
    assert registered_paths(repo) == [repo, first]


def test_detached_worktree_runs_at_a_commit_of_a_branch_checked_out_elsewhere(
    repo: Path, tmp_path: Path
):
    # given: main is checked out in the main working tree
    old = head_commit(repo)
    commit_file(repo, "later.txt", "later\n", "Later work")

    # when
    path = worktree_add(repo, old, tmp_path / "runs", "tests", detached=True)
    current = worktree_add(repo, "main", tmp_path / "runs", "tests-main", detached=True)

    # then
    assert git_out(path, "rev-parse", "HEAD") == old
    assert git_out(path, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"
    assert not (path / "later.txt").exists()
    assert git_out(current, "rev-parse", "HEAD") == head_commit(repo, "main")
    assert worktree_for_branch(repo, "main") == Worktree(
        path=repo,
        head=head_commit(repo),
        branch="main",
        is_main=True,
        is_bare=False,
        is_prunable=False,
    )


def test_worktree_add_refuses_something_other_than_a_local_branch(repo: Path, tmp_path: Path):
    # given: a sha would silently give a detached worktree
    sha = head_commit(repo)

    # when
    with pytest.raises(GitError) as caught:
        worktree_add(repo, sha, tmp_path / "runs", "run-1")

    # then
    assert caught.value.message == f"no branch {sha!r} in {repo}"
    assert not (tmp_path / "runs" / "run-1").exists()
    assert registered_paths(repo) == [repo]


def test_worktree_add_refuses_an_existing_directory(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    write(tmp_path / "runs" / "run-1" / "leftover.txt", "old\n")

    # when
    with pytest.raises(GitError) as caught:
        worktree_add(repo, "feature/login", tmp_path / "runs", "run-1")

    # then
    assert caught.value.stderr == f"fatal: '{tmp_path / 'runs' / 'run-1'}' already exists"
    assert registered_paths(repo) == [repo]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape"])
def test_worktree_add_refuses_a_name_that_is_not_one_directory(
    repo: Path, tmp_path: Path, name: str
):
    with pytest.raises(GitError) as caught:
        worktree_add(repo, "main", tmp_path / "runs", name, detached=True)

    assert caught.value.message == f"invalid worktree name: {name!r}"
    assert registered_paths(repo) == [repo]


def test_worktree_remove_removes_a_dirty_worktree(repo: Path, tmp_path: Path):
    # given: modified, untracked and ignored files
    ensure_branch(repo, "feature/login", "main")
    path = worktree_add(repo, "feature/login", tmp_path / "runs", "run-1")
    commit_file(path, ".gitignore", "*.log\n", "Ignore logs")
    write(path / "README.md", "changed\n")
    write(path / "new.txt", "new\n")
    write(path / "debug.log", "noise\n")
    assert is_clean(path) is False

    # when
    worktree_remove(repo, path)

    # then
    assert not path.exists()
    assert registered_paths(repo) == [repo]
    assert worktree_for_branch(repo, "feature/login") is None


def test_worktree_remove_forgets_a_worktree_deleted_behind_gits_back(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    path = worktree_add(repo, "feature/login", tmp_path / "runs", "run-1")
    shutil.rmtree(path)
    assert [tree.is_prunable for tree in worktree_list(repo)] == [False, True]

    # when
    worktree_remove(repo, path)

    # then: the branch can be checked out again
    assert registered_paths(repo) == [repo]
    again = worktree_add(repo, "feature/login", tmp_path / "runs", "run-2")
    assert git_out(again, "rev-parse", "--abbrev-ref", "HEAD") == "feature/login"


def test_worktree_remove_twice_is_harmless(repo: Path, tmp_path: Path):
    # given
    path = worktree_add(repo, "main", tmp_path / "runs", "run-1", detached=True)
    worktree_remove(repo, path)

    # when
    worktree_remove(repo, path)

    # then
    assert registered_paths(repo) == [repo]


def test_worktree_remove_refuses_a_directory_that_is_not_a_worktree(repo: Path, tmp_path: Path):
    # given
    plain = tmp_path / "precious"
    write(plain / "data.txt", "keep me\n")

    # when
    with pytest.raises(GitError) as caught:
        worktree_remove(repo, plain)

    # then
    assert caught.value.message == f"{plain} is not a worktree of {repo}"
    assert (plain / "data.txt").read_text() == "keep me\n"


def test_worktree_remove_refuses_the_main_working_tree(repo: Path):
    with pytest.raises(GitError) as caught:
        worktree_remove(repo, repo)

    assert caught.value.message == f"refusing to remove the main working tree of {repo}"
    assert (repo / "README.md").read_text() == "hello\n"


def test_temporary_worktree_is_removed_when_the_block_raises(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/login", "main")

    # when
    with (
        pytest.raises(RuntimeError),
        temporary_worktree(repo, "feature/login", tmp_path / "runs", "run-1") as path,
    ):
        write(path / "half-done.txt", "oops\n")
        raise RuntimeError("agent crashed")

    # then
    assert not path.exists()
    assert registered_paths(repo) == [repo]


def test_worktree_list_describes_branch_and_detached_worktrees(repo: Path, tmp_path: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    on_branch = worktree_add(repo, "feature/login", tmp_path / "runs", "dev")
    detached = worktree_add(repo, "main", tmp_path / "runs", "tests", detached=True)
    sha = head_commit(repo)

    # when
    trees = worktree_list(repo)

    # then
    assert trees == [
        Worktree(repo, sha, "main", is_main=True, is_bare=False, is_prunable=False),
        Worktree(on_branch, sha, "feature/login", is_main=False, is_bare=False, is_prunable=False),
        Worktree(detached, sha, None, is_main=False, is_bare=False, is_prunable=False),
    ]


def test_worktrees_of_different_branches_can_be_added_and_removed_concurrently(
    repo: Path, tmp_path: Path
):
    # given
    branches = [f"feature/f{index}" for index in range(6)]
    for branch in branches:
        ensure_branch(repo, branch, "main")

    def run(branch: str) -> str:
        name = branch.replace("/", "-")
        with temporary_worktree(repo, branch, tmp_path / "runs", name) as path:
            return commit_file(path, f"{name}.txt", f"{name}\n", f"Work on {branch}")

    # when
    with ThreadPoolExecutor(max_workers=len(branches)) as pool:
        shas = list(pool.map(run, branches))

    # then
    assert [head_commit(repo, branch) for branch in branches] == shas
    assert registered_paths(repo) == [repo]
    assert list((tmp_path / "runs").iterdir()) == []


def test_worktree_add_gives_up_after_its_timeout_while_another_holds_the_lock(
    repo: Path, tmp_path: Path
):
    # given
    ensure_branch(repo, "feature/login", "main")

    # when
    with (
        repository_lock(repo, "worktrees", timeout=1),
        pytest.raises(GitError) as caught,
    ):
        worktree_add(repo, "feature/login", tmp_path / "runs", "run-1", timeout=0.1)

    # then
    lock = repo / ".git" / "codemaestro-worktrees.lock"
    assert caught.value.message == f"timed out after 0.1s waiting for {lock}"
    assert not (tmp_path / "runs" / "run-1").exists()
    assert registered_paths(repo) == [repo]
