"""The permission policy: roles as guardian object permissions, project overrides, cleanup."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import get_perms

from accounts import services
from accounts.models import (
    ProjectRole,
    ProjectUserObjectPermission,
    Role,
    Workspace,
    WorkspaceUserObjectPermission,
)
from accounts.permissions import (
    Action,
    Principal,
    can,
    forget,
    role_in,
    scope,
    visible_workspaces,
)
from orchestration.errors import Conflict
from orchestration.models import Project, Subtask
from tests.factories import (
    FeatureFactory,
    MembershipFactory,
    ProjectFactory,
    RunFactory,
    SubtaskFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

EXPECTED = {
    Role.ADMIN: {"view", "edit", "review", "admin", "work"},
    Role.AUTHOR: {"view", "edit"},
    Role.REVIEWER: {"view", "review"},
    Role.READER: {"view"},
}


def fresh(user) -> Principal:
    forget(user)
    return Principal(user=user)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_is_exactly_its_guardian_object_permissions(workspace, member, role):
    user = member(role)
    assert set(get_perms(user, workspace)) == {f"{a}_workspace" for a in EXPECTED[role]}
    # guardian's own backend agrees with the policy module, action by action
    for action in Action:
        allowed = action.value in EXPECTED[role]
        assert user.has_perm(f"accounts.{action.value}_workspace", workspace) is allowed
        assert can(fresh(user), action, workspace.pk) is allowed


def test_a_role_change_replaces_the_permission_rows(workspace, member):
    user = member(Role.ADMIN)
    services.membership_set(workspace=workspace, user=user, role=Role.READER)
    assert set(get_perms(user, workspace)) == {"view_workspace"}
    assert not can(fresh(user), Action.EDIT, workspace.pk)


def test_outsiders_and_anonymous_callers_can_do_nothing(workspace, member):
    member(Role.ADMIN)
    outsider = UserFactory()
    for action in Action:
        assert not can(fresh(outsider), action, workspace.pk)
        assert not can(Principal(user=None), action, workspace.pk)
    assert role_in(fresh(outsider), workspace.pk) is None
    assert list(visible_workspaces(fresh(outsider))) == []


def test_a_project_override_lowers_a_role_on_that_project_only(workspace, member):
    user = member(Role.AUTHOR)
    locked, other = ProjectFactory(workspace=workspace), ProjectFactory(workspace=workspace)
    services.project_role_set(project=locked, user=user, role=Role.READER, actor="user:t")
    principal = fresh(user)
    in_locked = SubtaskFactory(project=locked)
    in_other = SubtaskFactory(project=other)
    # objects that belong to the project carry the override...
    assert not can(principal, Action.EDIT, in_locked)
    assert not can(principal, Action.EDIT, FeatureFactory(project=locked))
    assert not can(principal, Action.EDIT, RunFactory(subtask=in_locked))
    assert not can(principal, Action.EDIT, locked)
    assert not can(principal, Action.EDIT, workspace.pk, project=locked)
    # ...the rest of the workspace keeps the workspace role
    assert can(principal, Action.EDIT, in_other)
    assert can(principal, Action.EDIT, workspace.pk)
    assert can(principal, Action.VIEW, in_locked)
    assert role_in(principal, workspace.pk) == Role.AUTHOR
    assert role_in(principal, workspace.pk, project=locked) == Role.READER


def test_a_project_override_can_raise_a_role_on_one_project(workspace, member):
    user = member(Role.READER)
    project = ProjectFactory(workspace=workspace)
    services.project_role_set(project=project, user=user, role=Role.REVIEWER, actor="user:t")
    principal = fresh(user)
    assert can(principal, Action.REVIEW, SubtaskFactory(project=project))
    assert not can(
        principal, Action.REVIEW, SubtaskFactory(project=ProjectFactory(workspace=workspace))
    )
    # back to the workspace role
    services.project_role_set(project=project, user=user, role=None, actor="user:t")
    assert not can(fresh(user), Action.REVIEW, SubtaskFactory(project=project))
    assert not ProjectUserObjectPermission.objects.filter(user=user).exists()


def test_only_members_can_hold_a_project_role(workspace):
    from orchestration.errors import InvalidInput

    with pytest.raises(InvalidInput, match="only members"):
        services.project_role_set(
            project=ProjectFactory(workspace=workspace),
            user=UserFactory(),
            role=Role.ADMIN,
            actor="user:t",
        )


def test_an_override_in_another_workspace_grants_nothing_here(workspace, member):
    user = member(Role.READER)
    elsewhere = WorkspaceFactory()
    MembershipFactory(workspace=elsewhere, user=user, role=Role.READER)
    foreign = ProjectFactory(workspace=elsewhere)
    services.project_role_set(project=foreign, user=user, role=Role.ADMIN, actor="user:t")
    principal = fresh(user)
    assert can(principal, Action.ADMIN, foreign)
    assert not can(principal, Action.ADMIN, workspace.pk)
    assert not can(
        principal, Action.EDIT, SubtaskFactory(project=ProjectFactory(workspace=workspace))
    )


def test_removing_a_member_leaves_no_permission_rows(workspace, member):
    admin, user = member(Role.ADMIN), member(Role.AUTHOR)
    project = ProjectFactory(workspace=workspace)
    services.project_role_set(project=project, user=user, role=Role.ADMIN, actor="user:a")
    membership = user.memberships.get(workspace=workspace)
    services.member_remove(membership=membership, actor=f"user:{admin.username}")
    assert not WorkspaceUserObjectPermission.objects.filter(user=user).exists()
    assert not ProjectUserObjectPermission.objects.filter(user=user).exists()
    assert not ProjectRole.objects.filter(user=user).exists()
    assert not can(fresh(user), Action.VIEW, SubtaskFactory(project=project))


def test_a_deleted_project_leaves_no_rows_and_its_reused_id_grants_nothing(workspace, member):
    user = member(Role.READER)
    project = ProjectFactory(workspace=workspace)
    services.project_role_set(project=project, user=user, role=Role.ADMIN, actor="user:t")
    old_pk = project.pk
    project.delete()
    assert not ProjectUserObjectPermission.objects.filter(content_object_id=old_pk).exists()
    assert not ProjectRole.objects.filter(project_id=old_pk).exists()
    reborn = Project.objects.create(pk=old_pk, workspace=workspace, name="New", slug="new")
    assert not can(fresh(user), Action.ADMIN, reborn)
    assert role_in(fresh(user), workspace.pk, project=reborn) == Role.READER


def test_a_deleted_workspace_leaves_no_rows_and_its_reused_id_grants_nothing(member):
    doomed = WorkspaceFactory()
    user = member(Role.ADMIN, doomed)
    old_pk = doomed.pk
    doomed.delete()
    assert not WorkspaceUserObjectPermission.objects.filter(content_object_id=old_pk).exists()
    reborn = Workspace.objects.create(pk=old_pk, name="Reborn", slug="reborn")
    assert not can(fresh(user), Action.VIEW, reborn.pk)
    assert list(visible_workspaces(fresh(user))) == []


def test_the_last_admin_can_be_neither_demoted_nor_removed(workspace, member):
    admin = member(Role.ADMIN)
    membership = admin.memberships.get(workspace=workspace)
    with pytest.raises(Conflict, match="at least one admin"):
        services.member_role_change(membership=membership, role=Role.READER, actor="user:x")
    with pytest.raises(Conflict, match="last admin"):
        services.member_remove(membership=membership, actor="user:x")
    # with a second admin both are fine
    member(Role.ADMIN)
    services.member_role_change(membership=membership, role=Role.READER, actor="user:x")
    assert can(fresh(admin), Action.VIEW, workspace.pk)
    assert not can(fresh(admin), Action.ADMIN, workspace.pk)


def test_visible_workspaces_is_one_query_with_a_subquery_not_an_id_list(member):
    user = UserFactory()
    for _ in range(25):
        MembershipFactory(user=user, role=Role.READER)
    with CaptureQueriesContext(connection) as captured:
        names = list(visible_workspaces(fresh(user)).values_list("name", flat=True))
    assert len(names) == 25
    assert len(captured) == 1
    sql = captured[0]["sql"].upper()
    assert "IN (SELECT" in sql.replace("(\n", "(")
    assert str(25) not in sql and "IN (%S" not in sql


def test_checking_every_row_of_a_list_costs_one_query(workspace, member):
    user = member(Role.AUTHOR)
    projects = [ProjectFactory(workspace=workspace) for _ in range(5)]
    for project in projects[:3]:
        services.project_role_set(project=project, user=user, role=Role.READER, actor="user:t")
    for project in projects:
        SubtaskFactory.create_batch(4, project=project)
    rows = list(Subtask.objects.filter(workspace=workspace))
    principal = fresh(user)
    with CaptureQueriesContext(connection) as captured:
        editable = [s for s in rows if can(principal, Action.EDIT, s)]
    assert len(captured) == 1
    assert {s.project_id for s in editable} == {p.pk for p in projects[3:]}


def test_an_agent_token_limited_to_a_project_acts_only_there(workspace):
    home, other = ProjectFactory(workspace=workspace), ProjectFactory(workspace=workspace)
    token, _ = services.token_create_for_agent(
        workspace=workspace, role="developer", name="scoped", project=home
    )
    agent = Principal(user=None, token=token)
    mine, theirs = (
        RunFactory(subtask=SubtaskFactory(project=home)),
        RunFactory(subtask=SubtaskFactory(project=other)),
    )
    assert can(agent, Action.WORK, mine)
    assert not can(agent, Action.WORK, theirs)
    assert not can(agent, Action.EDIT, mine)  # agents never get a member's rights
    assert set(scope(agent, Subtask.objects.all())) == {mine.subtask}
    assert set(scope(agent, Project.objects.all())) == {home}
    # an unlimited token sees the whole workspace, and nothing of another
    token2, _ = services.token_create_for_agent(workspace=workspace, role="tester", name="all")
    wide = Principal(user=None, token=token2)
    SubtaskFactory()
    assert set(scope(wide, Subtask.objects.all())) == {mine.subtask, theirs.subtask}
    assert not can(wide, Action.VIEW, WorkspaceFactory().pk)
