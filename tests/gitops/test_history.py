from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gitops import (
    GitError,
    ahead_behind,
    changed_files,
    commit_all,
    commits_for_run,
    ensure_branch,
    head_commit,
    is_clean,
    log,
    run_trailer,
)
from tests.gitops.gitrepo import commit_file, git_out, switch, write

RUN = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e")
OTHER_RUN = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d")


def test_run_trailer_names_the_run():
    assert run_trailer(RUN) == "CodeMaestro-Run: 6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e"


def test_run_trailer_normalises_a_run_code_given_as_text():
    assert run_trailer("6F1C2D3E4B5A4C6D8E7F901A2B3C4D5E") == run_trailer(RUN)


def test_commit_all_commits_new_modified_and_deleted_files(repo: Path):
    # given
    commit_file(repo, "old.txt", "old\n", "Add old")
    write(repo / "README.md", "changed\n")
    write(repo / "src" / "new.py", "print('new')\n")
    (repo / "old.txt").unlink()

    # when
    sha = commit_all(repo, "Implement login\n\nDetails.\n", "Devon", "devon@example.com")

    # then
    assert sha == head_commit(repo)
    assert is_clean(repo) is True
    assert git_out(repo, "show", "--name-status", "--format=", "HEAD") == (
        "M\tREADME.md\nD\told.txt\nA\tsrc/new.py"
    )
    assert git_out(repo, "log", "-1", "--format=%an <%ae>%n%B") == (
        "Devon <devon@example.com>\nImplement login\n\nDetails."
    )


def test_commit_all_returns_none_when_nothing_changed(repo: Path):
    # given
    before = head_commit(repo)

    # when
    sha = commit_all(repo, "Nothing", "Devon", "devon@example.com")

    # then
    assert sha is None
    assert head_commit(repo) == before


def test_commit_all_leaves_ignored_files_out(repo: Path):
    # given
    commit_file(repo, ".gitignore", "*.log\n", "Ignore logs")
    before = head_commit(repo)
    write(repo / "debug.log", "noise\n")

    # when
    sha = commit_all(repo, "Only noise", "Devon", "devon@example.com")

    # then
    assert sha is None
    assert head_commit(repo) == before
    assert git_out(repo, "ls-files", "--others") == "debug.log"


def test_commit_all_keeps_message_lines_starting_with_a_hash(repo: Path):
    # given
    write(repo / "notes.md", "notes\n")
    message = f"Add notes\n\n# Why\nBecause.\n\n{run_trailer(RUN)}\n"

    # when
    commit_all(repo, message, "Devon", "devon@example.com")

    # then
    assert git_out(repo, "log", "-1", "--format=%B") == message.strip()


def test_commit_all_refuses_an_empty_message_and_keeps_the_changes(repo: Path):
    # given
    before = head_commit(repo)
    write(repo / "notes.md", "notes\n")

    # when
    with pytest.raises(GitError) as caught:
        commit_all(repo, "", "Devon", "devon@example.com")

    # then
    assert caught.value.returncode == 1
    assert caught.value.stderr == "Aborting commit due to empty commit message."
    assert head_commit(repo) == before
    assert changed_files(repo) == ["notes.md"]


def test_log_returns_commits_newest_first_with_authors_dates_and_trailers(repo: Path):
    # given
    write(repo / "a.txt", "a\n")
    first = commit_all(repo, f"Add a\n\nBody.\n\n{run_trailer(RUN)}", "Devon", "devon@example.com")
    write(repo / "b.txt", "b\n")
    message = f"Add b\n\n{run_trailer(OTHER_RUN)}\nCo-authored-by: Tara <tara@example.com>"
    second = commit_all(repo, message, "Tara", "tara@example.com")

    # when
    newest, older = log(repo, "main", 2)

    # then
    assert (newest.sha, newest.subject, newest.author_name, newest.author_email) == (
        second,
        "Add b",
        "Tara",
        "tara@example.com",
    )
    assert newest.trailers == (
        ("CodeMaestro-Run", str(OTHER_RUN)),
        ("Co-authored-by", "Tara <tara@example.com>"),
    )
    assert newest.run_code == str(OTHER_RUN)
    assert newest.trailer("co-authored-by") == "Tara <tara@example.com>"
    assert (older.sha, older.subject, older.run_code) == (first, "Add a", str(RUN))
    assert isinstance(newest.date, datetime)
    assert newest.date.utcoffset() is not None
    assert abs(datetime.now(newest.date.tzinfo) - newest.date) < timedelta(minutes=5)


def test_log_of_a_commit_without_trailers(repo: Path):
    (initial,) = log(repo, "HEAD", 5)

    assert initial.subject == "Initial commit"
    assert initial.trailers == ()
    assert initial.run_code is None


def test_log_stops_at_the_limit(repo: Path):
    # given
    for name in ("a", "b", "c"):
        commit_file(repo, f"{name}.txt", f"{name}\n", f"Add {name}")

    # when
    commits = log(repo, "main", 2)

    # then
    assert [commit.subject for commit in commits] == ["Add c", "Add b"]


def test_log_refuses_a_limit_below_one(repo: Path):
    with pytest.raises(GitError) as caught:
        log(repo, "main", 0)

    assert caught.value.message == "log limit must be at least 1, not 0"


def test_log_refuses_an_unknown_ref(repo: Path):
    with pytest.raises(GitError) as caught:
        log(repo, "no-such-branch", 5)

    assert caught.value.returncode == 128
    assert caught.value.stderr == "fatal: bad revision 'no-such-branch'"


def test_commits_for_run_finds_only_the_runs_own_commits(repo: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    switch(repo, "feature/login")
    write(repo / "a.txt", "a\n")
    mine = commit_all(repo, f"Add a\n\n{run_trailer(RUN)}", "Devon", "devon@example.com")
    write(repo / "b.txt", "b\n")
    commit_all(repo, f"Add b\n\n{run_trailer(OTHER_RUN)}", "Devon", "devon@example.com")
    write(repo / "c.txt", "c\n")
    quoting = f"Revert the run that wrote {run_trailer(RUN)} in its message\n\nNo trailer here."
    commit_all(repo, quoting, "Devon", "devon@example.com")
    write(repo / "d.txt", "d\n")
    again = commit_all(repo, f"Fix a\n\n{run_trailer(RUN)}", "Devon", "devon@example.com")

    # when
    commits = commits_for_run(repo, "feature/login", RUN)

    # then
    assert [commit.sha for commit in commits] == [again, mine]
    assert commits_for_run(repo, "main", RUN) == []


def test_ahead_behind_counts_commits_on_each_side(repo: Path):
    # given
    ensure_branch(repo, "feature/login", "main")
    commit_file(repo, "main.txt", "main\n", "Main moves on")
    switch(repo, "feature/login")
    commit_file(repo, "a.txt", "a\n", "Add a")
    commit_file(repo, "b.txt", "b\n", "Add b")

    # when / then
    assert ahead_behind(repo, "feature/login", "main") == (2, 1)
    assert ahead_behind(repo, "main", "feature/login") == (1, 2)
    assert ahead_behind(repo, "main", "main") == (0, 0)


def test_ahead_behind_refuses_an_unknown_branch(repo: Path):
    with pytest.raises(GitError) as caught:
        ahead_behind(repo, "no-such-branch", "main")

    assert caught.value.returncode == 128
    assert caught.value.stderr == "fatal: bad revision 'main...no-such-branch'"
