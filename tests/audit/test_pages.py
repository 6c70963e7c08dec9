from __future__ import annotations

import json

import pytest

from accounts.models import Role
from audit.services import record_audit
from tests.factories import WorkspaceFactory


def page(workspace, query: str = "") -> str:
    return f"/w/{workspace.code}/audit/{query}"


@pytest.fixture
def admin_client(client, member):
    client.force_login(member(Role.ADMIN))
    return client


def test_admin_sees_recent_entries_newest_first_with_download_links(
    admin_client, workspace, entries_at, django_assert_max_num_queries
):
    # given
    entries_at(workspace, [0, 30, 60])
    record_audit(workspace=WorkspaceFactory(), actor="user:eve", action="auth.login")
    # when
    with django_assert_max_num_queries(8):
        response = admin_client.get(page(workspace, "?from=2026-11-20T10:15Z"))
    # then
    assert response.status_code == 200
    assert [e.seq for e in response.context["entries"]] == [3, 2]
    html = response.content.decode()
    assert "user:eve" not in html
    export = f"/w/{workspace.code}/audit/export/"
    assert f'href="{export}?from=2026-11-20T10%3A15Z&amp;format=csv"' in html


def test_filters_by_action_prefix_and_actor(admin_client, workspace):
    record_audit(workspace=workspace, actor="user:alice", action="token.created")
    record_audit(workspace=workspace, actor="user:bob", action="token.revoked")
    record_audit(workspace=workspace, actor="user:bob", action="secret.created")
    response = admin_client.get(page(workspace, "?action=token.&actor=user:bob"))
    assert [e.action for e in response.context["entries"]] == ["token.revoked"]


def test_a_bad_range_shows_the_reason_with_400(admin_client, workspace):
    response = admin_client.get(page(workspace, "?from=2026-11-20&to=2026-11-19"))
    assert response.status_code == 400
    assert "to must be later than from" in response.content.decode()
    assert response.context["entries"] == []


def test_download_from_the_page_holds_the_range(admin_client, workspace, entries_at):
    entries_at(workspace, [0, 30, 60])
    response = admin_client.get(
        f"/w/{workspace.code}/audit/export/?from=2026-11-20T10:30Z&to=2026-11-20T11:00Z"
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2]
    bad = admin_client.get(f"/w/{workspace.code}/audit/export/?to=soon")
    assert bad.status_code == 400 and "to must be an ISO 8601" in bad.json()["to"][0]


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.REVIEWER, Role.READER])
def test_non_admin_members_get_403(client, member, workspace, role):
    client.force_login(member(role))
    assert client.get(page(workspace)).status_code == 403
    assert client.get(f"/w/{workspace.code}/audit/export/").status_code == 403


def test_other_workspaces_admins_get_404_and_anonymous_users_are_sent_to_login(
    client, member, workspace
):
    assert client.get(page(workspace)).status_code == 302
    client.force_login(member(Role.ADMIN, ws=WorkspaceFactory()))
    assert client.get(page(workspace)).status_code == 404
    assert client.get(f"/w/{workspace.code}/audit/export/").status_code == 404
