from __future__ import annotations

import pytest

from accounts.models import Role
from audit.models import AuditEntry
from identity.models import OidcProvider
from tests.factories import UserFactory, WorkspaceFactory

FORM = {
    "issuer": "https://login.example.com",
    "client_id": "codemaestro",
    "client_secret": "client-secret-value-42",
    "allowed_email_domain": "@Example.com",
    "default_role": Role.AUTHOR,
    "create_users": "on",
    "is_enabled": "on",
}


def url(workspace) -> str:
    return f"/w/{workspace.code}/sso/"


@pytest.mark.django_db
def test_workspace_admin_sets_sso_and_the_secret_is_never_shown(client, workspace, member):
    # given
    client.force_login(member(Role.ADMIN))
    # when
    response = client.post(url(workspace), FORM)
    # then
    assert response.status_code == 302
    provider = OidcProvider.objects.get(workspace=workspace)
    assert provider.allowed_email_domain == "example.com"
    assert provider.client_secret() == "client-secret-value-42"
    assert "client-secret-value-42" not in provider.client_secret_ciphertext
    page = client.get(url(workspace)).content.decode()
    assert "client-secret-value-42" not in page
    assert "A client secret is stored" in page
    entry = AuditEntry.objects.get(action="sso.configured")
    assert entry.workspace_id == workspace.pk
    assert entry.details["client_secret_changed"] is True
    assert "client-secret-value-42" not in str(entry.details)


@pytest.mark.django_db
def test_a_blank_secret_keeps_the_stored_one(client, workspace, member):
    client.force_login(member(Role.ADMIN))
    client.post(url(workspace), FORM)

    response = client.post(url(workspace), FORM | {"client_secret": "", "client_id": "renamed"})

    assert response.status_code == 302
    provider = OidcProvider.objects.get(workspace=workspace)
    assert (provider.client_id, provider.client_secret()) == ("renamed", "client-secret-value-42")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("issuer", "http://login.example.com", "must be an https:// URL"),
        ("issuer", "http://localhost.evil.example:8000", "must be an https:// URL"),
        ("allowed_email_domain", "example", "Give one domain"),
        ("client_secret", "", "A client secret is required"),
    ],
)
@pytest.mark.django_db
def test_invalid_sso_settings_are_refused(client, workspace, member, field, value, message):
    client.force_login(member(Role.ADMIN))

    response = client.post(url(workspace), FORM | {field: value})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not OidcProvider.objects.exists()


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.REVIEWER, Role.READER])
@pytest.mark.django_db
def test_members_who_are_not_admins_get_403(client, workspace, member, role):
    client.force_login(member(role))

    assert client.get(url(workspace)).status_code == 403
    assert client.post(url(workspace), FORM).status_code == 403
    assert not OidcProvider.objects.exists()


@pytest.mark.django_db
def test_another_workspaces_admin_gets_404(client, workspace, member):
    client.force_login(member(Role.ADMIN, WorkspaceFactory()))

    assert client.get(url(workspace)).status_code == 404
    assert client.post(url(workspace), FORM).status_code == 404


@pytest.mark.django_db
def test_admin_site_form_keeps_the_secret_write_only(client, workspace):
    # given
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    data = FORM | {"workspace": workspace.pk}
    # when
    response = client.post("/admin/identity/oidcprovider/add/", data)
    # then
    assert response.status_code == 302
    provider = OidcProvider.objects.get(workspace=workspace)
    change = client.get(f"/admin/identity/oidcprovider/{provider.pk}/change/")
    assert change.status_code == 200
    assert "client-secret-value-42" not in change.content.decode()
    assert AuditEntry.objects.get(action="sso.configured").actor == "user:root"
