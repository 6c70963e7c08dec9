from __future__ import annotations

from pathlib import Path

import pytest

from gitops import GitError, branch_exists, ensure_branch, ensure_repository, head_commit, log
from tests.gitops.gitrepo import commit_file, git_out, run_git, write


def test_ensure_repository_returns_an_existing_repository(repo: Path):
    assert ensure_repository(repo) == repo


def test_ensure_repository_accepts_a_bare_repository(repo: Path, tmp_path: Path):
    # given
    bare = tmp_path / "bare.git"
    run_git(None, "clone", "--quiet", "--bare", str(repo), str(bare))

    # when / then
    assert ensure_repository(bare) == bare


def test_ensure_repository_without_url_refuses_a_missing_path(tmp_path: Path):
    missing = tmp_path / "missing"

    with pytest.raises(GitError) as caught:
        ensure_repository(missing)

    assert caught.value.message == f"no git repository at {missing}, and no URL to clone it from"
    assert not missing.exists()


def test_ensure_repository_refuses_a_directory_that_is_not_a_repository(tmp_path: Path):
    # given
    plain = tmp_path / "plain"
    write(plain / "file.txt", "text\n")

    # when
    with pytest.raises(GitError) as caught:
        ensure_repository(plain, url="/unused")

    # then
    assert caught.value.message == f"{plain} exists but is not a git repository"
    assert sorted(p.name for p in plain.iterdir()) == ["file.txt"]


def test_ensure_repository_refuses_a_subdirectory_of_another_repository(repo: Path):
    # given
    inner = repo / "docs"
    write(inner / "index.md", "docs\n")

    # when / then
    with pytest.raises(GitError, match="exists but is not a git repository"):
        ensure_repository(inner)


def test_ensure_repository_clones_a_local_path(repo: Path, tmp_path: Path):
    # given
    dest = tmp_path / "clones" / "project"

    # when
    result = ensure_repository(dest, url=str(repo))

    # then
    assert result == dest
    assert head_commit(dest) == head_commit(repo)
    assert (dest / "README.md").read_text() == "hello\n"


def test_ensure_repository_clones_a_file_url(repo: Path, tmp_path: Path):
    # given
    dest = tmp_path / "project"

    # when
    ensure_repository(dest, url=repo.as_uri())

    # then
    assert head_commit(dest, "origin/main") == head_commit(repo)
    assert git_out(dest, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_ensure_repository_clones_into_an_empty_directory(repo: Path, tmp_path: Path):
    # given
    dest = tmp_path / "volume"
    dest.mkdir()

    # when
    ensure_repository(dest, url=str(repo))

    # then
    assert head_commit(dest) == head_commit(repo)


def test_ensure_repository_is_idempotent_once_cloned(repo: Path, tmp_path: Path):
    # given
    dest = ensure_repository(tmp_path / "project", url=str(repo))
    commit_file(repo, "later.txt", "later\n", "Later work upstream")

    # when
    again = ensure_repository(dest, url=str(repo))

    # then: the existing clone is used as is, not cloned again
    assert again == dest
    assert not (dest / "later.txt").exists()


def test_ensure_repository_failed_clone_raises_and_leaves_nothing(tmp_path: Path):
    # given
    dest = tmp_path / "project"
    missing = tmp_path / "no-such-origin"

    # when
    with pytest.raises(GitError) as caught:
        ensure_repository(dest, url=str(missing))

    # then
    assert caught.value.returncode == 128
    assert caught.value.stderr == (f"fatal: repository '{missing}' does not exist")
    assert not dest.exists()


def test_ensure_repository_clone_timeout_removes_the_partial_clone(repo: Path, tmp_path: Path):
    # given
    dest = tmp_path / "project"

    # when
    with pytest.raises(GitError) as caught:
        ensure_repository(dest, url=str(repo), timeout=0.001)

    # then
    assert caught.value.message.endswith("timed out after 0.001s")
    assert not dest.exists()


def test_ensure_repository_never_reads_the_url_as_an_option(tmp_path: Path):
    dest = tmp_path / "project"

    with pytest.raises(GitError) as caught:
        ensure_repository(dest, url="--upload-pack=touch pwned")

    assert caught.value.returncode == 128
    assert not dest.exists()
    assert not Path("pwned").exists()


def test_branch_exists_tells_local_branches(repo: Path):
    # given
    run_git(repo, "branch", "feature/login")

    # when / then
    assert branch_exists(repo, "feature/login") is True
    assert branch_exists(repo, "feature/other") is False


def test_ensure_branch_creates_the_branch_at_base(repo: Path):
    # given
    base = head_commit(repo)
    commit_file(repo, "later.txt", "later\n", "Later work")

    # when
    created = ensure_branch(repo, "feature/login", base)

    # then
    assert created is True
    assert head_commit(repo, "feature/login") == base
    assert git_out(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_ensure_branch_leaves_an_existing_branch_where_it_is(repo: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    branch_head = head_commit(repo, "feature/login")
    commit_file(repo, "later.txt", "later\n", "Later work")

    # when
    created = ensure_branch(repo, "feature/login", "main")

    # then
    assert created is False
    assert head_commit(repo, "feature/login") == branch_head


def test_ensure_branch_refuses_an_unknown_base(repo: Path):
    with pytest.raises(GitError) as caught:
        ensure_branch(repo, "feature/login", "no-such-base")

    assert caught.value.message == f"unknown revision 'no-such-base' in {repo}"
    assert branch_exists(repo, "feature/login") is False


@pytest.mark.parametrize("name", ["feature/a..b", "has space", "-f", "ends.lock", ""])
def test_ensure_branch_refuses_an_invalid_name(repo: Path, name: str):
    with pytest.raises(GitError, match="invalid branch name"):
        ensure_branch(repo, name, "main")

    assert git_out(repo, "for-each-ref", "--format=%(refname)", "refs/heads") == ("refs/heads/main")


def test_head_commit_resolves_branches_and_short_shas(repo: Path):
    # given
    sha = commit_file(repo, "later.txt", "later\n", "Later work")

    # when / then
    assert head_commit(repo) == sha
    assert head_commit(repo, "main") == sha
    assert head_commit(repo, sha[:10]) == sha
    assert head_commit(repo, "main~1") == log(repo, "main", 2)[1].sha


def test_head_commit_refuses_an_unknown_ref(repo: Path):
    with pytest.raises(GitError) as caught:
        head_commit(repo, "no-such-ref")

    assert caught.value.message == f"unknown revision 'no-such-ref' in {repo}"


def test_head_commit_refuses_a_missing_repository(tmp_path: Path):
    missing = tmp_path / "missing"

    with pytest.raises(GitError) as caught:
        head_commit(missing)

    assert caught.value.returncode == 128
    assert caught.value.stderr == f"fatal: cannot change to '{missing}': No such file or directory"
