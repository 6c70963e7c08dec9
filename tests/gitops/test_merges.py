from __future__ import annotations

from pathlib import Path

import pytest

from gitops import (
    GitError,
    MergeConflict,
    ensure_branch,
    head_commit,
    is_clean,
    merge,
    worktree_add,
    worktree_list,
)
from tests.gitops.gitrepo import commit_file, git_out, run_git, switch, write


def feature_branch(repo: Path, *files: tuple[str, str]) -> str:
    """Commit `files` on feature/login (from main), go back to main; return the branch head."""
    ensure_branch(repo, "feature/login", "main")
    switch(repo, "feature/login")
    for name, text in files:
        commit_file(repo, name, text, f"Add {name}")
    switch(repo, "main")
    return head_commit(repo, "feature/login")


def parents(repo: Path, ref: str) -> list[str]:
    return git_out(repo, "rev-list", "--parents", "-n1", ref).split()[1:]


def test_fast_forward_moves_into_to_the_branch_head_and_updates_its_checkout(repo: Path):
    # given: main is checked out in the main working tree
    branch_head = feature_branch(repo, ("login.py", "login\n"))

    # when
    sha = merge(repo, "feature/login", "main", mode="fast_forward")

    # then
    assert sha == branch_head
    assert head_commit(repo, "main") == branch_head
    assert (repo / "login.py").read_text() == "login\n"
    assert is_clean(repo) is True


def test_fast_forward_refuses_branches_that_diverged(repo: Path):
    # given
    feature_branch(repo, ("login.py", "login\n"))
    main_head = commit_file(repo, "main.txt", "main\n", "Main moves on")

    # when
    with pytest.raises(GitError) as caught:
        merge(repo, "feature/login", "main", mode="fast_forward")

    # then
    assert caught.value.returncode == 128
    assert caught.value.stderr == "fatal: Not possible to fast-forward, aborting."
    assert head_commit(repo, "main") == main_head
    assert is_clean(repo) is True


def test_merge_commit_records_both_parents_even_when_fast_forward_was_possible(repo: Path):
    # given
    main_head = head_commit(repo)
    branch_head = feature_branch(repo, ("login.py", "login\n"))

    # when
    sha = merge(repo, "feature/login", "main")

    # then
    assert sha == head_commit(repo, "main")
    assert parents(repo, sha) == [main_head, branch_head]
    assert git_out(repo, "log", "-1", "--format=%s", sha) == "Merge branch 'feature/login'"
    assert (repo / "login.py").read_text() == "login\n"
    assert is_clean(repo) is True


def test_merge_commit_uses_the_given_message_and_author(repo: Path):
    # given
    feature_branch(repo, ("login.py", "login\n"))

    # when
    sha = merge(
        repo,
        "feature/login",
        "main",
        message="Merge feature/login (approved by Rita)",
        author_name="Rita",
        author_email="rita@example.com",
    )

    # then
    assert git_out(repo, "log", "-1", "--format=%s|%an <%ae>|%cn", sha) == (
        "Merge feature/login (approved by Rita)|Rita <rita@example.com>|CodeMaestro"
    )


def test_merge_conflict_names_the_files_and_leaves_the_repository_clean(repo: Path):
    # given: both sides change README.md and config.toml differently
    commit_file(repo, "config.toml", "debug = false\n", "Add config")
    feature_branch(repo, ("README.md", "feature\n"), ("config.toml", "debug = 1\n"))
    commit_file(repo, "config.toml", "debug = 2\n", "Main config")
    main_head = commit_file(repo, "README.md", "main\n", "Main edits")

    # when
    with pytest.raises(MergeConflict) as caught:
        merge(repo, "feature/login", "main")

    # then
    assert caught.value.files == ("README.md", "config.toml")
    assert caught.value.message == (
        "merging 'feature/login' into 'main' conflicts in: README.md, config.toml"
    )
    assert caught.value.returncode == 1
    assert head_commit(repo, "main") == main_head
    assert is_clean(repo) is True
    assert (repo / "README.md").read_text() == "main\n"
    assert run_git(repo, "rev-parse", "-q", "--verify", "MERGE_HEAD", ok_codes=(1,)).stdout == ""


def test_merge_refuses_when_the_checkout_of_into_has_uncommitted_changes(repo: Path):
    # given
    feature_branch(repo, ("login.py", "login\n"))
    main_head = head_commit(repo)
    write(repo / "README.md", "work in progress\n")

    # when
    with pytest.raises(GitError) as caught:
        merge(repo, "feature/login", "main")

    # then
    assert caught.value.message == (
        f"'main' is checked out at {repo} with uncommitted changes; "
        "commit or discard them before merging"
    )
    assert head_commit(repo, "main") == main_head
    assert (repo / "README.md").read_text() == "work in progress\n"


def test_merge_into_a_branch_checked_out_nowhere_leaves_working_trees_untouched(repo: Path):
    # given: the main checkout is on main, with uncommitted work; release is checked out nowhere
    ensure_branch(repo, "release", "main")
    release_head = head_commit(repo, "release")
    branch_head = feature_branch(repo, ("login.py", "login\n"))
    write(repo / "README.md", "work in progress\n")

    # when
    sha = merge(repo, "feature/login", "release")

    # then
    assert head_commit(repo, "release") == sha
    assert parents(repo, sha) == [release_head, branch_head]
    assert git_out(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert (repo / "README.md").read_text() == "work in progress\n"
    assert not (repo / "login.py").exists()
    assert [tree.path for tree in worktree_list(repo)] == [repo]


def test_merge_conflict_in_a_temporary_worktree_leaves_nothing_behind(repo: Path):
    # given
    ensure_branch(repo, "release", "main")
    switch(repo, "release")
    release_head = commit_file(repo, "README.md", "release\n", "Release edits")
    switch(repo, "main")
    feature_branch(repo, ("README.md", "feature\n"))

    # when
    with pytest.raises(MergeConflict) as caught:
        merge(repo, "feature/login", "release")

    # then
    assert caught.value.files == ("README.md",)
    assert head_commit(repo, "release") == release_head
    assert [tree.path for tree in worktree_list(repo)] == [repo]
    assert is_clean(repo) is True


def test_merge_into_a_branch_checked_out_in_a_linked_worktree_updates_that_worktree(
    repo: Path, tmp_path: Path
):
    # given
    ensure_branch(repo, "release", "main")
    release_tree = worktree_add(repo, "release", tmp_path / "trees", "release")
    branch_head = feature_branch(repo, ("login.py", "login\n"))

    # when
    sha = merge(repo, "feature/login", "release", mode="fast_forward")

    # then
    assert sha == branch_head
    assert (release_tree / "login.py").read_text() == "login\n"
    assert is_clean(release_tree) is True


def test_merge_of_an_already_merged_branch_changes_nothing(repo: Path):
    # given
    feature_branch(repo, ("login.py", "login\n"))
    merged = merge(repo, "feature/login", "main")

    # when
    again = merge(repo, "feature/login", "main")

    # then
    assert again == merged
    assert head_commit(repo, "main") == merged


def test_merge_refuses_an_unknown_mode(repo: Path):
    feature_branch(repo, ("login.py", "login\n"))
    main_head = head_commit(repo)

    with pytest.raises(GitError) as caught:
        merge(repo, "feature/login", "main", mode="squash")  # type: ignore[arg-type]

    assert caught.value.message == (
        "unknown merge mode 'squash'; expected one of merge_commit, fast_forward"
    )
    assert head_commit(repo, "main") == main_head


def test_merge_refuses_an_unknown_branch(repo: Path):
    main_head = head_commit(repo)

    with pytest.raises(GitError) as caught:
        merge(repo, "feature/missing", "main")

    assert caught.value.message == f"unknown revision 'feature/missing' in {repo}"
    assert head_commit(repo, "main") == main_head


def test_merge_refuses_an_unknown_target_branch(repo: Path):
    feature_branch(repo, ("login.py", "login\n"))

    with pytest.raises(GitError) as caught:
        merge(repo, "feature/login", "release")

    assert caught.value.message == f"no branch 'release' to merge into in {repo}"
