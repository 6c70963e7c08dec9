from __future__ import annotations

import time
from pathlib import Path

import pytest

from gitops import GitError, commit_all, head_commit, log, run_git
from gitops.run import refuse_option
from tests.gitops.gitrepo import commit_file, init_repo, write


def test_run_git_returns_git_output(repo: Path):
    # when
    result = run_git(repo, "rev-parse", "--abbrev-ref", "HEAD")

    # then
    assert result.returncode == 0
    assert result.stdout == "main\n"
    assert result.stderr == ""
    assert result.command[0] == "git"
    assert result.command[-3:] == ("rev-parse", "--abbrev-ref", "HEAD")


def test_failed_command_raises_git_error_with_command_exit_code_and_message(repo: Path):
    # when
    with pytest.raises(GitError) as caught:
        run_git(repo, "rev-parse", "--verify", "no-such-ref")

    # then
    error = caught.value
    assert error.message == "git rev-parse --verify no-such-ref failed with exit code 128"
    assert error.returncode == 128
    assert error.stderr == "fatal: Needed a single revision"
    assert error.command[-3:] == ("rev-parse", "--verify", "no-such-ref")
    assert str(error) == (
        "git rev-parse --verify no-such-ref failed with exit code 128; "
        "git said: fatal: Needed a single revision"
    )


def test_accepted_exit_codes_do_not_raise(repo: Path):
    # when
    result = run_git(repo, "diff", "--quiet", "HEAD~0", "HEAD", ok_codes=(0, 1))

    # then
    assert result.returncode == 0


def test_timeout_kills_git_and_the_processes_it_started(tmp_path: Path):
    # given: an alias that runs `sleep`, a child of git that holds git's output pipes open
    started = time.monotonic()

    # when
    with pytest.raises(GitError) as caught:
        run_git(tmp_path, "-c", "alias.slow=!sleep 30", "slow", timeout=0.5)

    # then: it returns soon after the timeout instead of waiting for sleep to end
    assert time.monotonic() - started < 10
    assert caught.value.message == "git -c 'alias.slow=!sleep 30' slow timed out after 0.5s"
    assert caught.value.returncode is None


def test_missing_git_binary_raises_git_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # given: a PATH in which there is no git
    monkeypatch.setenv("PATH", str(tmp_path))

    # when
    with pytest.raises(GitError) as caught:
        run_git(None, "--version")

    # then
    assert caught.value.message == "could not start git: No such file or directory"
    assert caught.value.returncode is None


def test_commits_without_any_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # given: no global or system config, so no user.name or user.email anywhere
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = init_repo(tmp_path / "repo")
    write(repo / "notes.txt", "a note\n")

    # when
    sha = commit_all(repo, "Add notes", "Devon", "devon@example.com")

    # then
    (commit,) = log(repo, "HEAD", 1)
    assert commit.sha == sha
    assert (commit.author_name, commit.author_email) == ("Devon", "devon@example.com")
    assert run_git(repo, "log", "-1", "--format=%cn <%ce>").stdout == (
        "CodeMaestro <codemaestro@localhost>\n"
    )


def test_inherited_git_dir_does_not_redirect_commands(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # given: the environment of a git hook running in another repository
    other = init_repo(tmp_path / "other")
    other_head = commit_file(other, "other.txt", "other\n", "Other work")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))

    # when
    sha = head_commit(repo)

    # then
    assert sha != other_head
    assert sha == run_git(repo, "log", "-1", "--format=%H").stdout.strip()


def test_repository_hooks_are_not_run(repo: Path):
    # given: a pre-commit hook that would refuse every commit (and leave a mark)
    hook = write(repo / ".git" / "hooks" / "pre-commit", "#!/bin/sh\ntouch hook-ran\nexit 1\n")
    hook.chmod(0o755)
    write(repo / "notes.txt", "a note\n")

    # when
    sha = commit_all(repo, "Add notes", "Devon", "devon@example.com")

    # then
    assert sha == head_commit(repo)
    assert not (repo / "hook-ran").exists()


@pytest.mark.parametrize("value", ["", "-f", "--force"])
def test_refuse_option_refuses_values_git_would_read_as_options(value: str):
    with pytest.raises(GitError) as caught:
        refuse_option(value, "revision")

    assert caught.value.message == f"invalid revision: {value!r}"
    assert caught.value.command == ()


def test_refuse_option_returns_an_ordinary_value():
    assert refuse_option("feature/login", "branch name") == "feature/login"
