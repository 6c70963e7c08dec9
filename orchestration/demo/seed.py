"""Seeding the demo: a user, a workspace, three agent profiles and a small real repository.

Every step finds what an earlier run made and only fills the gaps, so the launcher calls
`demo_seed` on every start. The steps are not one transaction (`project_create` owns its
own, durably); a run that stops half-way is completed by the next one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model

from accounts.models import AgentRole, Role, Workspace
from accounts.services import membership_set, workspace_create
from orchestration.models import AgentProfile, Executor, Project
from orchestration.models.projects import default_policy
from orchestration.services.work import project_create

DEMO_USERNAME = "demo"
WORKSPACE_NAME = "Demo workspace"
WORKSPACE_SLUG = "demo"
PROJECT_NAME = "textkit"
PROJECT_SLUG = "textkit"
TEST_COMMAND = "python -m pytest -q --junitxml=.codemaestro/junit.xml"
CREDENTIALS_FILE = "demo-credentials.txt"
ACTOR = "system:seed_demo"
TEMPLATE_DIR = Path(__file__).resolve().parent / "template"
GIT_NAME = "CodeMaestro demo"
GIT_EMAIL = "demo@codemaestro.local"

AGENTS = (
    (
        "Orion",
        AgentRole.PM,
        "You are Orion, the product manager. Turn the feature request into a short FRD and "
        "small subtasks with clear acceptance criteria and dependencies.",
    ),
    (
        "Tara",
        AgentRole.TESTER,
        "You are Tara, the tester. Write failing pytest tests that pin the acceptance "
        "criteria of the subtask; do not touch the implementation.",
    ),
    (
        "Devon",
        AgentRole.DEVELOPER,
        "You are Devon, the developer. Make the subtask's tests pass with the smallest clear "
        "change; never edit the tests.",
    ),
)


class DemoSeedError(Exception):
    """The demo could not be prepared; the message says what to do."""


@dataclass(frozen=True)
class DemoInfo:
    username: str
    password: str
    credentials_path: Path
    workspace: Workspace
    project: Project
    repo_path: Path


def demo_seed(*, data_dir: Path) -> DemoInfo:
    data_dir = Path(data_dir)
    credentials_path = data_dir / CREDENTIALS_FILE
    password = demo_password(path=credentials_path)
    user = _demo_user(password=password)
    workspace = Workspace.objects.filter(slug=WORKSPACE_SLUG).first() or workspace_create(
        name=WORKSPACE_NAME, slug=WORKSPACE_SLUG
    )
    membership_set(workspace=workspace, user=user, role=Role.ADMIN)
    project = _demo_project(workspace=workspace, data_dir=data_dir)
    for name, role, prompt in AGENTS:
        AgentProfile.objects.get_or_create(
            workspace=workspace,
            name=name,
            defaults={"role": role, "executor": Executor.DEMO, "prompt_template": prompt},
        )
    return DemoInfo(
        username=user.username,
        password=password,
        credentials_path=credentials_path,
        workspace=workspace,
        project=project,
        repo_path=Path(project.repo_path),
    )


def demo_password(*, path: Path) -> str:
    """Read the demo password from `path`, or generate it and write it there (mode 0600)."""
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("password:"):
                return line.removeprefix("password:").strip()
        raise DemoSeedError(f"{path} has no 'password:' line; delete it to get a new password")
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL with the mode at creation: the password is never readable by others, not even
    # for the instant between a write and a chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"# CodeMaestro demo login\nusername: {DEMO_USERNAME}\npassword: {password}\n")
    return password


def _demo_user(*, password: str):
    user, created = get_user_model().objects.get_or_create(
        username=DEMO_USERNAME, defaults={"email": GIT_EMAIL}
    )
    # The credentials file is the truth: a password changed elsewhere would make the login
    # the launcher prints wrong.
    if created or not (user.is_staff and user.is_superuser) or not user.check_password(password):
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
    return user


def _demo_project(*, workspace: Workspace, data_dir: Path) -> Project:
    project = Project.objects.filter(workspace=workspace, slug=PROJECT_SLUG).first()
    if project is not None:
        if project.repo_path:
            demo_repo_create(path=Path(project.repo_path))
        return project
    repo_path = data_dir / "repos" / PROJECT_SLUG
    demo_repo_create(path=repo_path)
    return project_create(
        workspace=workspace,
        name=PROJECT_NAME,
        slug=PROJECT_SLUG,
        actor=ACTOR,
        repo_path=str(repo_path),
        default_branch="main",
        test_command=TEST_COMMAND,
        # Short backoff: the demo's scripted failure should turn green while people watch.
        policy={**default_policy(), "backoff_seconds": 2, "backoff_max_seconds": 10},
    )


def demo_repo_create(*, path: Path) -> bool:
    """Create the textkit repository at `path` from the template; False if it exists."""
    if (path / ".git").is_dir():
        return False
    if path.exists():
        raise DemoSeedError(f"{path} exists but is not a git repository; move it away and retry")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Built beside its final place and renamed at the end, so an interrupted seed never
    # leaves a half-made repository that a later run would take as done.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        shutil.copytree(
            TEMPLATE_DIR,
            staging,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".codemaestro"),
        )
        # Shipped without its dot so packaging globs, which skip dotfiles, keep it.
        (staging / "gitignore").rename(staging / ".gitignore")
        _git(staging, "init", "-q")
        _git(staging, "symbolic-ref", "HEAD", "refs/heads/main")
        _git(staging, "add", "--all")
        _git(staging, "commit", "-q", "-m", "textkit: word_count and title_case, with tests")
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def _git(cwd: Path, *args: str) -> None:
    environment = {
        **os.environ,
        # The demo repository must come out the same whatever this machine's git config
        # says (no identity, commit signing, hooks, templates).
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": GIT_NAME,
        "GIT_AUTHOR_EMAIL": GIT_EMAIL,
        "GIT_COMMITTER_NAME": GIT_NAME,
        "GIT_COMMITTER_EMAIL": GIT_EMAIL,
    }
    try:
        subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=environment,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        raise DemoSeedError("git is not installed; install git and run again") from None
    except subprocess.CalledProcessError as error:
        raise DemoSeedError(f"`git {' '.join(args)}` failed: {error.stderr.strip()}") from None
