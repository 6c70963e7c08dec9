"""Two complete workspaces for the security tests: one of every object a URL can name.

Built through the services where they exist (memberships, tokens, projects, questions,
comments, the review's change set) and factories for the rest, so each workspace looks like
one the product made itself. The security tests ask every endpoint about workspace A's
objects as each principal of A (own) and of B (foreign).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.test import TestCase

from accounts.models import AgentRole, ApiToken, Membership, Role
from accounts.permissions import Principal
from accounts.secrets import secret_create, secret_grant
from accounts.services import (
    member_invite,
    membership_set,
    token_create_for_agent,
    token_create_for_user,
    workspace_create,
)
from agents.services import question_ask
from orchestration.lock_objects import lock_subtask
from orchestration.models import (
    AgentProfile,
    Event,
    Executor,
    PromptProposal,
    SubtaskDependency,
    TestRun,
    TestRunStatus,
)
from orchestration.services import handoffs_table
from review.models import Approval, ChangeSet
from review.services.comments import comment_add
from tests.factories import (
    FeatureFactory,
    ProjectFactory,
    RunFactory,
    SubtaskFactory,
    UserFactory,
    set_status,
)
from tests.gitops.gitrepo import commit_file, init_repo, switch

PEOPLE = (Role.ADMIN, Role.AUTHOR, Role.REVIEWER, Role.READER)
# Every principal the matrix asks as: the four roles, an agent token, a signed-in user of no
# workspace, and nobody.
ROLES = (*PEOPLE, "agent", "outsider", "anonymous")
SOURCE = "".join(f"LIMIT_{n} = {n}\n" for n in range(1, 21))


@dataclass
class Side:
    """One workspace with its people, tokens and one object of every kind."""

    workspace: object
    users: dict[str, object] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # role → raw API key
    sessions: dict[str, str] = field(default_factory=dict)  # role → session key (pages)
    objects: dict[str, object] = field(default_factory=dict)

    def codes(self) -> set[str]:
        """Every UUID of this side's objects: none may appear in another tenant's answer."""
        found = {str(self.workspace.code)}
        for obj in self.objects.values():
            code = getattr(obj, "code", None)
            if code is not None:
                found.add(str(code))
        return found


@dataclass
class World:
    own: Side
    foreign: Side
    outsider: object
    outsider_key: str
    outsider_session: str = ""


def _repository(path: Path) -> Path:
    repo = init_repo(path)
    commit_file(repo, "check.py", "raise SystemExit(0)\n", "check script")
    return repo


def build_side(name: str, repo_dir: Path) -> Side:
    workspace = workspace_create(name=f"Workspace {name}", slug=f"sec-{name.lower()}")
    side = Side(workspace=workspace)
    for role in PEOPLE:
        # No usable password: hashing twenty of them costs seconds, and sessions need none.
        user = UserFactory(username=f"{name.lower()}-{role}", password="!")
        membership_set(workspace=workspace, user=user, role=role)
        side.users[role] = user
        side.keys[role] = token_create_for_user(user=user, name="security")[1]
    side.keys["agent"] = token_create_for_agent(
        workspace=workspace, role=AgentRole.DEVELOPER, name=f"devon-{name.lower()}"
    )[1]
    repo = _repository(repo_dir / name)
    project = ProjectFactory(workspace=workspace, repo_path=str(repo), test_command="true")
    feature = FeatureFactory(
        project=project, created_by=side.users[Role.AUTHOR], slug="sec", status="in_progress"
    )
    subtask = SubtaskFactory(project=project, feature=feature, risk="medium")
    other = SubtaskFactory(project=project, feature=feature)
    third = SubtaskFactory(project=project, feature=feature)
    dependency = SubtaskDependency.objects.create(subtask=other, depends_on=subtask)
    profile = AgentProfile.objects.create(
        workspace=workspace, name="Devon", role=AgentRole.DEVELOPER, executor=Executor.EXTERNAL
    )
    changeset, approval = _open_review(repo, project, feature, subtask)
    secret = secret_create(
        workspace=workspace, name="API_KEY", environment="dev", value="s3cr3t-v4lue", actor="t"
    )
    secret_grant(secret=secret, profile=profile, actor="t")
    invite, invite_key = member_invite(
        workspace=workspace, email=f"new-{name.lower()}@example.com", role=Role.READER, actor="t"
    )
    reviewer = Principal(user=side.users[Role.REVIEWER])
    comment = comment_add(
        changeset=changeset,
        principal=reviewer,
        body="why?",
        path="limits.py",
        side="new",
        first_line=2,
        line_count=1,
        revision_number=1,
    )
    question = question_ask(subtask=other, text="Which limit?", asked_by="agent:devon")
    side.objects.update(
        project=project,
        feature=feature,
        subtask=subtask,
        other_subtask=other,
        third_subtask=third,
        dependency=dependency,
        run=RunFactory(subtask=other, feature=feature),
        profile=profile,
        proposal=PromptProposal.objects.create(
            workspace=workspace,
            profile=profile,
            base_version=profile.prompt_version,
            proposed_template="Be brief.",
        ),
        testrun=TestRun.objects.filter(workspace=workspace).first(),
        changeset=changeset,
        approval=approval,
        comment=comment,
        question=question,
        secret=secret,
        invite=invite,
        invite_key=invite_key,
        membership=Membership.objects.get(workspace=workspace, user=side.users[Role.READER]),
        token=ApiToken.objects.get(workspace=workspace, kind=ApiToken.Kind.AGENT),
        event=Event.objects.filter(workspace=workspace).order_by("-id").first(),
    )
    return side


def _open_review(repo: Path, project, feature, subtask) -> tuple[ChangeSet, Approval]:
    """Push a change on the feature branch and let the review open its change set."""
    switch(repo, feature.branch, create=True)
    commit_file(repo, "limits.py", SOURCE, "limits")
    head = commit_file(repo, "notes.md", "# Notes\n", "notes")
    switch(repo, "main")
    set_status(subtask, "testing", stage="implementation")
    TestRun.objects.create(
        workspace_id=project.workspace_id,
        project=project,
        feature=feature,
        subtask=subtask,
        purpose="verify",
        status=TestRunStatus.PASSED,
        branch=feature.branch,
        commit_sha=head,
    )
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        handoffs_table.open_review(lock_subtask(subtask.pk), 0)
    changeset = ChangeSet.objects.get(feature=feature)
    return changeset, Approval.objects.filter(changeset=changeset).first()


def build_world(repo_dir: Path) -> World:
    own = build_side("A", repo_dir)
    foreign = build_side("B", repo_dir)
    outsider = UserFactory(username="nobody", password="!")
    return World(own, foreign, outsider, token_create_for_user(user=outsider, name="x")[1])
