"""Helpers that build real repositories for the gitops tests, through git itself."""

from __future__ import annotations

from pathlib import Path

from gitops.run import run_git


def init_repo(path: Path) -> Path:
    """Create a repository on `main` with one commit holding README.md."""
    run_git(None, "init", "--quiet", "--initial-branch=main", str(path))
    commit_file(path, "README.md", "hello\n", "Initial commit")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    """Write `name` in `repo`, commit it with `message`, and return the new sha."""
    write(repo / name, text)
    run_git(repo, "add", "--", name)
    run_git(repo, "commit", "--quiet", "-m", message)
    return git_out(repo, "rev-parse", "HEAD")


def git_out(repo: Path, *args: str) -> str:
    return run_git(repo, *args).stdout.strip()


def switch(repo: Path, branch: str, *, create: bool = False) -> None:
    run_git(repo, "switch", "--quiet", *(("-c",) if create else ()), branch)
