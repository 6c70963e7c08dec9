"""Members & access pages: admins only, specific messages, secrets shown once, audit."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.models import ApiToken, Invite, Membership, ProjectRole, Role, hash_token
from accounts.permissions import Action, Principal, can, forget
from audit.models import AuditEntry
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin(member):
    return member(Role.ADMIN)


@pytest.fixture
def admin_client(admin):
    return signed_in(admin)


def url(name, workspace, *args):
    return reverse(f"accounts:{name}", args=[workspace.code, *args])


def actions(workspace) -> list[str]:
    return list(
        AuditEntry.objects.filter(workspace_id=workspace.pk)
        .order_by("seq")
        .values_list("action", flat=True)
    )


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.REVIEWER, Role.READER])
def test_members_who_are_not_admins_get_403(workspace, member, role):
    client = signed_in(member(role))
    assert client.get(url("access", workspace)).status_code == 403
    response = client.post(url("invite-create", workspace), {"email": "a@b.co", "role": "reader"})
    assert response.status_code == 403
    assert not Invite.objects.exists()


def test_other_workspaces_answer_404_even_to_their_admins(workspace, admin):
    foreign = WorkspaceFactory()
    victim = MembershipFactory(workspace=foreign, role=Role.ADMIN)
    client = signed_in(admin)
    assert client.get(url("access", foreign)).status_code == 404
    assert client.post(url("member-remove", foreign, victim.pk)).status_code == 404
    # a member id of another workspace under one's own workspace is not found either
    assert client.post(url("member-remove", workspace, victim.pk)).status_code == 404
    assert Membership.objects.filter(pk=victim.pk).exists()


def test_anonymous_visitors_are_sent_to_sign_in(workspace):
    response = Client().get(url("access", workspace))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_page_lists_everything_in_a_fixed_number_of_queries(workspace, admin, admin_client):
    def grow(n, tag):
        for i in range(n):
            user = MembershipFactory(workspace=workspace, role=Role.AUTHOR).user
            project = ProjectFactory(workspace=workspace)
            services.project_role_set(project=project, user=user, role=Role.READER, actor="t")
            services.member_invite(
                workspace=workspace, email=f"{tag}{i}@x.io", role=Role.READER, actor="t"
            )
            services.token_create_for_agent(
                workspace=workspace, role="developer", name=f"{tag}{i}", project=project
            )

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url("access", workspace)).status_code == 200
        return len(captured)

    grow(1, "a")
    small = count()
    grow(6, "b")
    assert count() == small
    page = admin_client.get(url("access", workspace)).content.decode()
    assert page.count('<tr id="member-') == 8 and page.count('<tr id="token-') == 7


def test_an_invite_shows_its_link_once_and_the_link_lets_a_new_person_join(workspace, admin_client):
    response = admin_client.post(
        url("invite-create", workspace), {"email": "Ada@Example.com", "role": "reviewer"}
    )
    assert response.status_code == 200
    link = re.search(r"http://testserver(/invites/[^<\s]+/)", response.content.decode()).group(1)
    # the page later does not show it again
    assert link not in admin_client.get(url("access", workspace)).content.decode()
    visitor = Client()
    assert "Join " + workspace.name in visitor.get(link).content.decode()
    joined = visitor.post(link, {"username": "ada", "password": "a-long-pass-phrase-9"})
    assert joined.status_code == 302
    assert joined["Location"] == reverse("dashboard:workspace", args=[workspace.code])
    ada = Membership.objects.get(workspace=workspace, user__username="ada")
    assert (ada.role, ada.user.email) == (Role.REVIEWER, "ada@example.com")
    # the link works once
    again = Client().post(link, {"username": "eve", "password": "a-long-pass-phrase-9"})
    assert again.status_code == 400 and b"already been used" in again.content
    assert actions(workspace) == ["member.invited", "member.joined"]


def test_a_signed_in_user_accepts_an_invite(workspace, admin):
    _, token = services.member_invite(
        workspace=workspace, email="bob@example.com", role=Role.AUTHOR, actor="t"
    )
    bob = UserFactory()
    response = signed_in(bob).post(reverse("accounts:invite", args=[token]))
    assert response.status_code == 302
    forget(bob)
    assert can(Principal(user=bob), Action.EDIT, workspace.pk)


def test_expired_forged_and_withdrawn_invite_links_are_refused(workspace, admin_client):
    invite, token = services.member_invite(
        workspace=workspace, email="c@example.com", role=Role.ADMIN, actor="t"
    )
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert b"not valid" in Client().get(reverse("accounts:invite", args=[forged])).content
    Invite.objects.filter(pk=invite.pk).update(expires_at=invite.created_at)
    expired = Client().get(reverse("accounts:invite", args=[token]))
    assert expired.status_code == 400 and b"expired" in expired.content
    invite2, token2 = services.member_invite(
        workspace=workspace, email="d@example.com", role=Role.ADMIN, actor="t"
    )
    admin_client.post(url("invite-revoke", workspace, invite2.code))
    withdrawn = Client().post(
        reverse("accounts:invite", args=[token2]), {"username": "d", "password": "x-long-pw-77"}
    )
    assert withdrawn.status_code == 400 and b"withdrawn" in withdrawn.content
    assert not Membership.objects.filter(user__username="d").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "", "role": "reader"}, "Enter the email address to invite."),
        ({"email": "not-an-email", "role": "reader"}, "Enter a valid email address"),
        ({"email": "a@b.co", "role": "owner"}, "Choose one of the roles"),
    ],
)
def test_invite_form_errors_are_specific(workspace, admin_client, data, message):
    response = admin_client.post(url("invite-create", workspace), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Invite.objects.exists()


def test_inviting_a_member_again_is_a_conflict(workspace, admin, admin_client):
    admin.email = "boss@example.com"
    admin.save()
    response = admin_client.post(
        url("invite-create", workspace), {"email": "BOSS@example.com", "role": "reader"}
    )
    assert response.status_code == 409
    assert "already a member" in response.content.decode()


def test_roles_change_and_the_last_admin_stays(workspace, admin, admin_client, member):
    author = member(Role.AUTHOR)
    membership = author.memberships.get()
    response = admin_client.post(
        url("member-role", workspace, membership.pk), {"role": "reviewer"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "is now reviewer" in response.content.decode()
    forget(author)
    assert can(Principal(user=author), Action.REVIEW, workspace.pk)
    bad = admin_client.post(url("member-role", workspace, membership.pk), {"role": "boss"})
    assert bad.status_code == 400 and "Choose one of the roles" in bad.content.decode()
    own = admin.memberships.get()
    last = admin_client.post(url("member-role", workspace, own.pk), {"role": "reader"})
    assert last.status_code == 409 and "at least one admin" in last.content.decode()
    removal = admin_client.post(url("member-remove", workspace, own.pk))
    assert removal.status_code == 409 and "last admin" in removal.content.decode()
    gone = admin_client.post(url("member-remove", workspace, membership.pk))
    assert gone.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert actions(workspace) == ["member.role_changed", "member.removed"]


def test_project_overrides_are_set_and_cleared_from_the_page(workspace, admin_client, member):
    author = member(Role.AUTHOR)
    project = ProjectFactory(workspace=workspace)
    data = {"member": author.pk, "project": str(project.code), "role": "reader"}
    assert admin_client.post(url("project-role", workspace), data).status_code == 302
    assert ProjectRole.objects.get(user=author, project=project).role == Role.READER
    forget(author)
    assert not can(Principal(user=author), Action.EDIT, project)
    cleared = admin_client.post(url("project-role", workspace), {**data, "role": ""})
    assert cleared.status_code == 302
    assert not ProjectRole.objects.exists()
    outsider = UserFactory()
    foreign_project = ProjectFactory()
    bad = admin_client.post(
        url("project-role", workspace),
        {"member": outsider.pk, "project": str(foreign_project.code), "role": "admin"},
    )
    text = bad.content.decode()
    assert bad.status_code == 400
    assert "Choose a member of this workspace." in text
    assert "Choose a project of this workspace." in text
    assert actions(workspace) == ["project_role.set", "project_role.set"]


def test_agent_tokens_show_the_key_once_store_a_hash_and_revoke(workspace, admin_client):
    project = ProjectFactory(workspace=workspace)
    response = admin_client.post(
        url("token-create", workspace),
        {"name": "ci-runner", "role": "developer", "project": str(project.code)},
    )
    raw = re.search(r"cm_[A-Za-z0-9_-]{30,}", response.content.decode()).group(0)
    token = ApiToken.objects.get(name="ci-runner")
    assert (token.key_hash, token.project, token.agent_role) == (
        hash_token(raw),
        project,
        "developer",
    )
    assert raw not in admin_client.get(url("access", workspace)).content.decode()
    # the key works against the API until revoked, and its use shows up as "last used"
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/projects/").status_code == 200
    assert (
        "never"
        not in admin_client.get(url("access", workspace))
        .content.decode()
        .split('id="token-')[1]
        .split("</tr>")[0]
    )
    assert admin_client.post(url("token-revoke", workspace, token.code)).status_code == 302
    assert api.get("/api/v1/projects/").status_code == 401
    assert actions(workspace) == ["token.created", "token.revoked"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "role": "developer"}, "Give the token a name"),
        ({"name": "x" * 121, "role": "developer"}, "at most 120 characters"),
        ({"name": "bot", "role": "wizard"}, "Choose one of the agent roles."),
        ({"name": "bot", "role": "tester", "project": "nope"}, "Choose a project of this"),
    ],
)
def test_token_form_errors_are_specific(workspace, admin_client, data, message):
    response = admin_client.post(url("token-create", workspace), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_of_another_workspace_cannot_be_revoked_here(workspace, admin_client):
    foreign, _ = services.token_create_for_agent(
        workspace=WorkspaceFactory(), role="tester", name="theirs"
    )
    assert admin_client.post(url("token-revoke", workspace, foreign.code)).status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_the_switcher_lists_only_the_users_workspaces(workspace, admin, admin_client):
    mine = MembershipFactory(user=admin, role=Role.READER).workspace
    other = WorkspaceFactory()
    page = admin_client.get(reverse("accounts:switcher"), {"current": str(workspace.code)})
    text = page.content.decode()
    assert workspace.name in text and mine.name in text and other.name not in text
    room = admin_client.get(reverse("dashboard:workspace", args=[workspace.code])).content.decode()
    assert reverse("accounts:switcher") in room
    assert url("access", workspace) in room  # admins see the Members link


def test_the_api_manages_members_invites_and_tokens_for_admins_only(
    workspace, api_as, agent_api, outsider_api, member
):
    admin = api_as(Role.ADMIN)
    base = f"/api/v1/workspaces/{workspace.code}"
    author = member(Role.AUTHOR)
    membership = author.memberships.get()
    listed = admin.get(f"{base}/members/").json()
    assert {m["username"] for m in listed} == {admin.user.username, author.username}
    changed = admin.patch(f"{base}/members/{membership.pk}/", {"role": "reviewer"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "reviewer"
    bad = admin.patch(f"{base}/members/{membership.pk}/", {"role": "owner"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()
    project = ProjectFactory(workspace=workspace)
    override = admin.post(
        f"{base}/members/{membership.pk}/project-roles/",
        {"project": str(project.code), "role": "admin"},
        format="json",
    )
    assert override.json() == [{"project": str(project.code), "role": "admin"}]
    # a workspace in the body is ignored: the invite is for the URL's workspace
    other = WorkspaceFactory()
    invite = admin.post(
        f"{base}/invites/",
        {"email": "x@example.com", "role": "reader", "workspace": str(other.code)},
        format="json",
    )
    assert invite.status_code == 201 and "/invites/" in invite.json()["link"]
    assert Invite.objects.get().workspace == workspace
    assert admin.get(f"{base}/invites/").json()[0]["email"] == "x@example.com"
    assert "link" not in admin.get(f"{base}/invites/").json()[0]
    created = admin.post(
        f"{base}/tokens/", {"name": "bot", "role": "tester", "project": str(project.code)},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201
    key = created.json()["key"]
    assert ApiToken.objects.get(code=created.json()["id"]).key_hash == hash_token(key)
    assert "key" not in admin.get(f"{base}/tokens/").json()[0]
    assert admin.delete(f"{base}/tokens/{created.json()['id']}/").status_code == 204
    assert admin.delete(f"{base}/members/{membership.pk}/").status_code == 204
    # others: members without admin 403, agents 403, outsiders 404
    assert api_as(Role.AUTHOR).get(f"{base}/members/").status_code == 403
    assert agent_api("developer").get(f"{base}/tokens/").status_code == 403
    assert outsider_api.get(f"{base}/members/").status_code == 404
    assert admin.get(f"/api/v1/workspaces/{other.code}/members/").status_code == 404
