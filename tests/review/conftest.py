"""Real repositories, projects and features for the review tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.cache import cache

import gitops
from accounts.models import Role
from orchestration.models import Subtask, TestRun, TestRunStatus
from review.diffs.fragments import clear_local_caches
from tests.factories import FeatureFactory, MembershipFactory, ProjectFactory, SubtaskFactory
from tests.gitops.gitrepo import commit_file, init_repo, switch, write

# A test command that needs no test framework: it writes a JUnit report whose one case
# passes unless the file RED exists in the checkout.
CHECK_SCRIPT = """\
import os, pathlib
red = os.path.exists("RED")
out = pathlib.Path(".codemaestro/junit.xml")
out.parent.mkdir(exist_ok=True)
case = '<testcase classname="check" name="green">' + (
    '<failure message="RED exists">red</failure>' if red else "") + "</testcase>"
out.write_text('<testsuite name="check" tests="1" failures="%d">%s</testsuite>' % (red, case))
raise SystemExit(1 if red else 0)
"""
TEST_COMMAND = "python check.py"


@pytest.fixture(autouse=True)
def fresh_caches():
    cache.clear()
    clear_local_caches()
    yield
    cache.clear()
    clear_local_caches()


def git(repo: Path, *args: str) -> str:
    return gitops.run_git(repo, *args).stdout.strip()


def commit_all(repo: Path, message: str, *, author: str = "Alice <alice@example.com>") -> str:
    gitops.run_git(repo, "add", "--all")
    name, email = author[:-1].split(" <")
    gitops.run_git(
        repo,
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        message,
        env={"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email},
    )
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Setup:
    repo: Path
    project: object
    feature: object
    filer: object  # the person who filed the feature
    reviewer: object

    @property
    def branch(self) -> str:
        return self.feature.branch

    def on_branch(self) -> None:
        switch(self.repo, self.branch)

    def on_main(self) -> None:
        switch(self.repo, "main")

    def push(self, files: dict[str, str | None], message: str = "change", **kw) -> str:
        """Commit `files` (None deletes) on the feature branch and return the new head."""
        self.on_branch()
        for name, text in files.items():
            if text is None:
                (self.repo / name).unlink()
            else:
                write(self.repo / name, text)
        sha = commit_all(self.repo, message, **kw)
        self.on_main()
        return sha

    def head(self) -> str:
        return gitops.head_commit(self.repo, self.branch)

    def green(self, sha: str | None = None, status: str = TestRunStatus.PASSED) -> TestRun:
        """A finished verifying test run of `sha` (the branch head by default)."""
        return TestRun.objects.create(
            workspace_id=self.project.workspace_id,
            project=self.project,
            feature=self.feature,
            purpose="verify",
            status=status,
            branch=self.branch,
            commit_sha=sha or self.head(),
        )

    def subtask(self, **fields) -> Subtask:
        return SubtaskFactory(project=self.project, feature=self.feature, **fields)


@pytest.fixture
def setup(tmp_path, workspace, settings) -> Setup:
    """A repository with main (README, check.py) and feature/<slug> branched from it."""
    settings.DATA_DIR = tmp_path / "data"
    repo = init_repo(tmp_path / "repo")
    commit_file(repo, "check.py", CHECK_SCRIPT, "check script")
    commit_file(repo, ".gitignore", ".codemaestro/\n", "ignore reports")
    project = ProjectFactory(workspace=workspace, repo_path=str(repo), test_command=TEST_COMMAND)
    filer = MembershipFactory(workspace=workspace, role=Role.AUTHOR).user
    reviewer = MembershipFactory(workspace=workspace, role=Role.REVIEWER).user
    feature = FeatureFactory(project=project, created_by=filer, slug="shiny", status="in_progress")
    switch(repo, feature.branch, create=True)
    switch(repo, "main")
    return Setup(repo, project, feature, filer, reviewer)
