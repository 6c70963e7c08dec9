from __future__ import annotations

from pathlib import Path

import pytest

from gitops import (
    FileStat,
    GitError,
    apply_patch,
    changed_files,
    diff,
    diff_stat,
    ensure_branch,
    head_commit,
    is_clean,
)
from tests.gitops.gitrepo import commit_file, git_out, run_git, switch, write

GREETING = "def greet():\n    return 'hello'\n"


def feature_with_rename(repo: Path) -> None:
    """main has greet.py; feature/login renames it to hello.py and edits one line."""
    commit_file(repo, "greet.py", GREETING + "\n# one\n# two\n# three\n# four\n", "Add greet")
    ensure_branch(repo, "feature/login", "main")
    switch(repo, "feature/login")
    run_git(repo, "mv", "greet.py", "hello.py")
    write(repo / "hello.py", GREETING.replace("hello", "hi") + "\n# one\n# two\n# three\n# four\n")
    run_git(repo, "commit", "--quiet", "-am", "Rename greet to hello")


def test_is_clean_is_true_for_a_fresh_checkout(repo: Path):
    assert is_clean(repo) is True
    assert changed_files(repo) == []


def test_changed_files_lists_modified_staged_deleted_and_untracked_paths(repo: Path):
    # given
    commit_file(repo, "gone.txt", "gone\n", "Add gone")
    commit_file(repo, "moved.txt", "moved\n", "Add moved")
    write(repo / "README.md", "changed\n")
    write(repo / "staged.txt", "staged\n")
    run_git(repo, "add", "staged.txt")
    (repo / "gone.txt").unlink()
    write(repo / "docs" / "new file.md", "new\n")
    run_git(repo, "mv", "moved.txt", "renamed.txt")

    # when / then
    assert changed_files(repo) == [
        "README.md",
        "docs/new file.md",
        "gone.txt",
        "moved.txt",
        "renamed.txt",
        "staged.txt",
    ]
    assert is_clean(repo) is False


def test_ignored_files_are_not_changes(repo: Path):
    # given
    commit_file(repo, ".gitignore", "build/\n", "Ignore build")
    write(repo / "build" / "out.bin", "binary\n")

    # when / then
    assert changed_files(repo) == []
    assert is_clean(repo) is True


def test_diff_detects_renames_with_full_blob_ids(repo: Path):
    # given
    feature_with_rename(repo)
    old_blob = git_out(repo, "rev-parse", "main:greet.py")
    new_blob = git_out(repo, "rev-parse", "feature/login:hello.py")

    # when
    text = diff(repo, "main", "feature/login")

    # then
    assert text == (
        "diff --git a/greet.py b/hello.py\n"
        "similarity index 68%\n"
        "rename from greet.py\n"
        "rename to hello.py\n"
        f"index {old_blob}..{new_blob} 100644\n"
        "--- a/greet.py\n"
        "+++ b/hello.py\n"
        "@@ -1,5 +1,5 @@\n"
        " def greet():\n"
        "-    return 'hello'\n"
        "+    return 'hi'\n"
        " \n"
        " # one\n"
        " # two\n"
    )


def test_diff_shows_only_the_branchs_changes_after_base_moved_on(repo: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    commit_file(repo, "main-only.txt", "main\n", "Main moves on")
    switch(repo, "feature/login")
    commit_file(repo, "feature.txt", "feature\n", "Feature work")

    # when
    since_fork = diff_stat(repo, "main", "feature/login")
    direct = diff_stat(repo, "main", "feature/login", since_merge_base=False)

    # then
    assert since_fork == [FileStat("feature.txt", None, 1, 0, is_binary=False)]
    assert direct == [
        FileStat("feature.txt", None, 1, 0, is_binary=False),
        FileStat("main-only.txt", None, 0, 1, is_binary=False),
    ]
    assert "main-only.txt" not in diff(repo, "main", "feature/login")
    assert "main-only.txt" in diff(repo, "main", "feature/login", since_merge_base=False)


def test_diff_context_sets_the_lines_around_changes(repo: Path):
    # given
    feature_with_rename(repo)

    # when
    text = diff(repo, "main", "feature/login", context=0)

    # then
    assert text.endswith("@@ -2 +2 @@ def greet():\n-    return 'hello'\n+    return 'hi'\n")


def test_diff_stat_counts_lines_of_renamed_and_binary_files(repo: Path):
    # given
    feature_with_rename(repo)
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x01\x02")
    write(repo / "notes.md", "one\ntwo\n")
    run_git(repo, "add", ".")
    run_git(repo, "commit", "--quiet", "-m", "Add logo and notes")

    # when
    stats = diff_stat(repo, "main", "feature/login")

    # then
    assert stats == [
        FileStat("hello.py", "greet.py", 1, 1, is_binary=False),
        FileStat("logo.png", None, 0, 0, is_binary=True),
        FileStat("notes.md", None, 2, 0, is_binary=False),
    ]
    assert "Binary files /dev/null and b/logo.png differ\n" in diff(repo, "main", "feature/login")


def test_diff_refuses_an_unknown_base(repo: Path):
    with pytest.raises(GitError) as caught:
        diff(repo, "no-such-base", "main")

    assert caught.value.returncode == 128
    assert caught.value.stderr == "fatal: bad revision 'no-such-base...main'"


def test_apply_patch_applies_to_worktree_and_index(repo: Path):
    # given: a patch as an external agent would produce it, without its final newline
    feature_with_rename(repo)
    patch = diff(repo, "main", "feature/login").rstrip("\n")
    switch(repo, "main")

    # when
    apply_patch(repo, patch)

    # then
    assert not (repo / "greet.py").exists()
    assert (repo / "hello.py").read_text() == git_out(repo, "show", "feature/login:hello.py") + "\n"
    assert git_out(repo, "diff", "--cached", "--name-status", "-M") == "R068\tgreet.py\thello.py"
    assert git_out(repo, "diff", "--name-only") == ""


def test_apply_patch_that_does_not_apply_changes_nothing_and_says_why(repo: Path):
    # given: one file of the patch applies, the other does not
    commit_file(repo, "other.txt", "first\n", "Add other")
    patch = (
        "diff --git a/other.txt b/other.txt\n"
        "--- a/other.txt\n"
        "+++ b/other.txt\n"
        "@@ -1 +1 @@\n"
        "-first\n"
        "+second\n"
        "diff --git a/README.md b/README.md\n"
        "--- a/README.md\n"
        "+++ b/README.md\n"
        "@@ -1 +1 @@\n"
        "-goodbye\n"
        "+farewell\n"
    )
    before = head_commit(repo)

    # when
    with pytest.raises(GitError) as caught:
        apply_patch(repo, patch)

    # then
    assert caught.value.message == "the patch does not apply"
    assert caught.value.returncode == 1
    assert caught.value.stderr == (
        "error: patch failed: README.md:1\nerror: README.md: patch does not apply"
    )
    assert is_clean(repo) is True
    assert (repo / "other.txt").read_text() == "first\n"
    assert head_commit(repo) == before


def test_apply_patch_refuses_text_that_is_not_a_patch(repo: Path):
    with pytest.raises(GitError) as caught:
        apply_patch(repo, "please change the greeting\n")

    assert caught.value.message == "the patch does not apply"
    assert caught.value.stderr == 'error: No valid patches in input (allow with "--allow-empty")'
    assert is_clean(repo) is True


def test_apply_patch_refuses_paths_outside_the_worktree(repo: Path, tmp_path: Path):
    # given
    patch = (
        "diff --git a/../escape.txt b/../escape.txt\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/../escape.txt\n"
        "@@ -0,0 +1 @@\n"
        "+escaped\n"
    )

    # when
    with pytest.raises(GitError, match="the patch does not apply"):
        apply_patch(repo, patch)

    # then
    assert not (tmp_path / "escape.txt").exists()
    assert is_clean(repo) is True
