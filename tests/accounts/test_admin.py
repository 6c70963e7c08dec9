"""The Django admin asks the same policy: staff see only workspaces they administer."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership, Role
from audit.models import AuditEntry
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def staff_client(user) -> Client:
    user.is_staff = True
    user.save()
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="accounts",
            codename__in=["view_membership", "change_membership"],
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_staff_see_only_memberships_of_workspaces_they_administer(workspace):
    boss = MembershipFactory(workspace=workspace, role=Role.ADMIN).user
    reader_ws = WorkspaceFactory()
    MembershipFactory(workspace=reader_ws, user=boss, role=Role.READER)
    hidden = MembershipFactory(workspace=reader_ws, role=Role.AUTHOR)
    MembershipFactory(workspace=WorkspaceFactory(), role=Role.ADMIN)
    client = staff_client(boss)
    page = client.get("/admin/accounts/membership/")
    assert page.status_code == 200
    assert str(workspace) in page.content.decode()
    assert client.get(f"/admin/accounts/membership/{hidden.pk}/change/").status_code == 302
    superuser = UserFactory(is_superuser=True, is_staff=True)
    su = Client()
    su.force_login(superuser)
    assert hidden.user.username in su.get("/admin/accounts/membership/").content.decode()


def test_a_role_change_in_the_admin_goes_through_the_rules_and_the_audit(workspace):
    boss = MembershipFactory(workspace=workspace, role=Role.ADMIN)
    client = staff_client(boss.user)
    response = client.post(
        f"/admin/accounts/membership/{boss.pk}/change/",
        {"workspace": workspace.pk, "user": boss.user.pk, "role": "reader"},
        follow=True,
    )
    assert "at least one admin" in response.content.decode()
    assert Membership.objects.get(pk=boss.pk).role == Role.ADMIN
    other = MembershipFactory(workspace=workspace, role=Role.READER)
    client.post(
        f"/admin/accounts/membership/{other.pk}/change/",
        {"workspace": workspace.pk, "user": other.user.pk, "role": "author"},
    )
    assert Membership.objects.get(pk=other.pk).role == Role.AUTHOR
    assert list(
        AuditEntry.objects.filter(workspace_id=workspace.pk).values_list("action", flat=True)
    ) == ["member.role_changed"]
