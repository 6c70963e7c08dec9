"""Secrets: encrypted at rest, one value per environment, write-only API and page, grants."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import crypto, scrubbing, secrets
from accounts.models import Role, Secret
from audit.models import AuditEntry
from orchestration.models import AgentProfile, Executor
from tests.factories import MembershipFactory, ProjectFactory, RunFactory, WorkspaceFactory

VALUE = "sk-live-Plant3d-0123456789"
OTHER_VALUE = "sk-live-Replac3d-9876543210"


@pytest.fixture(autouse=True)
def fresh_scrubber():
    scrubbing.forget_all()
    yield
    scrubbing.forget_all()


def make_secret(workspace, name="API_KEY", environment="dev", value=VALUE) -> Secret:
    return secrets.secret_create(
        workspace=workspace, name=name, environment=environment, value=value, actor="user:test"
    )


def make_profile(workspace, name="Devon") -> AgentProfile:
    return AgentProfile.objects.create(
        workspace=workspace, name=name, role="developer", executor=Executor.COMMAND
    )


def actions(workspace) -> list[str]:
    return list(
        AuditEntry.objects.filter(workspace=workspace)
        .order_by("seq")
        .values_list("action", flat=True)
    )


def api_url(workspace, *parts) -> str:
    tail = "".join(f"{part}/" for part in parts)
    return f"/api/v1/workspaces/{workspace.code}/secrets/{tail}"


# --- storage --------------------------------------------------------------------------


def test_only_ciphertext_is_stored_and_it_reads_back(workspace):
    # given
    secret = make_secret(workspace)

    # when
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_secret WHERE id = %s", [secret.pk])
        row = [str(column) for column in cursor.fetchone()]

    # then
    assert not any(VALUE in column for column in row)
    assert Secret.objects.get(pk=secret.pk).reveal() == VALUE


def test_a_name_holds_one_value_per_environment(workspace):
    # given
    make_secret(workspace, environment="dev", value=VALUE)
    make_secret(workspace, environment="prod", value=OTHER_VALUE)

    # when / then
    with pytest.raises(secrets.SecretConflict):
        make_secret(workspace, environment="prod", value="another-value-1")
    values = {s.environment: s.reveal() for s in Secret.objects.filter(workspace=workspace)}
    assert values == {"dev": VALUE, "prod": OTHER_VALUE}
    assert actions(workspace) == ["secret.created", "secret.created"]


@pytest.mark.parametrize(
    ("name", "environment", "value", "message"),
    [
        ("api_key", "dev", VALUE, "name must be an environment variable name"),
        ("API_KEY", "production", VALUE, "environment must be one of dev, staging, prod"),
        ("API_KEY", "dev", "short", "value must be at least 6 characters"),
        ("API_KEY", "dev", "x" * 10_001, "value must be at most 10000 characters"),
    ],
)
def test_refuses_a_bad_secret_and_writes_nothing(workspace, name, environment, value, message):
    with pytest.raises(secrets.SecretError, match=message):
        make_secret(workspace, name=name, environment=environment, value=value)
    assert not Secret.objects.exists()
    assert actions(workspace) == []


# --- the environment matrix -----------------------------------------------------------


def test_a_run_gets_its_environments_values_of_granted_secrets_only(workspace):
    # given: staging project; the profile holds API_KEY in dev and staging, DB_URL in prod
    project = ProjectFactory(workspace=workspace, policy={"environment": "staging"})
    profile = make_profile(workspace)
    granted = [
        make_secret(workspace, "API_KEY", "dev", "dev-key-000001"),
        make_secret(workspace, "API_KEY", "staging", "staging-key-01"),
        make_secret(workspace, "DB_URL", "prod", "postgres://prod-only"),
    ]
    make_secret(workspace, "UNGRANTED", "staging", "not-for-devon-1")
    profile.granted_secrets.add(*granted)
    run = RunFactory(subtask__project=project, profile=profile)

    # when
    values = secrets.secrets_for_run(run)

    # then
    assert values == {"API_KEY": "staging-key-01"}
    accessed = AuditEntry.objects.get(workspace=workspace, action="secret.accessed")
    assert accessed.actor == "agent:Devon"
    assert accessed.target == "secret:API_KEY:staging"
    assert accessed.details["run"] == str(run.code)


def test_a_project_without_an_environment_runs_in_dev(workspace):
    project = ProjectFactory(workspace=workspace)
    assert secrets.run_environment(project) == "dev"


def test_a_project_with_an_unknown_environment_gets_no_secrets(workspace):
    # given
    project = ProjectFactory(workspace=workspace, policy={"environment": "production"})
    profile = make_profile(workspace)
    profile.granted_secrets.add(make_secret(workspace, environment="prod"))
    run = RunFactory(subtask__project=project, profile=profile)

    # when / then
    with pytest.raises(secrets.SecretsUnavailable, match="use one of dev, staging, prod"):
        secrets.secrets_for_run(run)
    assert "secret.accessed" not in actions(workspace)


# --- the API --------------------------------------------------------------------------


def test_admins_list_names_environments_and_masks_never_values(
    workspace, api_as, django_assert_num_queries
):
    # given
    client = api_as(Role.ADMIN)
    profile = make_profile(workspace)
    for name in ("API_KEY", "DB_URL", "SMTP_PASSWORD"):
        for environment in ("dev", "prod"):
            make_secret(workspace, name, environment, f"{name}-{environment}-value")
    Secret.objects.get(name="API_KEY", environment="prod").granted_to.add(profile)

    # when: auth token, its user, workspace, role, secrets, grants
    with django_assert_num_queries(6):
        response = client.get(api_url(workspace))

    # then
    assert response.status_code == 200
    body = response.json()
    assert [(s["name"], s["environment"], s["value"]) for s in body] == [
        (name, env, "******")
        for name in ("API_KEY", "DB_URL", "SMTP_PASSWORD")
        for env in ("dev", "prod")
    ]
    assert body[1]["granted_to"] == [{"id": str(profile.code), "name": "Devon"}]
    assert "-value" not in response.content.decode()


def test_creating_ignores_a_workspace_in_the_body_and_returns_no_value(workspace, api_as):
    # given
    client = api_as(Role.ADMIN)
    other = WorkspaceFactory()
    MembershipFactory(workspace=other, user=client.user, role=Role.ADMIN)

    # when
    response = client.post(
        api_url(workspace),
        {"name": "API_KEY", "environment": "staging", "value": VALUE, "workspace": str(other.code)},
        format="json",
    )

    # then
    assert response.status_code == 201
    assert response.json()["value"] == "******"
    assert VALUE not in response.content.decode()
    secret = Secret.objects.get()
    assert (secret.workspace, secret.environment, secret.reveal()) == (workspace, "staging", VALUE)
    assert actions(workspace) == ["secret.created"]
    assert actions(other) == []


def test_creating_an_existing_name_and_environment_is_a_conflict(workspace, api_as):
    client = api_as(Role.ADMIN)
    make_secret(workspace)
    body = {"name": "API_KEY", "environment": "dev", "value": OTHER_VALUE}

    response = client.post(api_url(workspace), body, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": "API_KEY already has a dev value; replace it instead"}
    assert Secret.objects.get().reveal() == VALUE


def test_creating_with_a_bad_name_answers_400_and_stores_nothing(workspace, api_as):
    client = api_as(Role.ADMIN)

    response = client.post(
        api_url(workspace), {"name": "lower", "environment": "dev", "value": VALUE}, format="json"
    )

    assert response.status_code == 400
    assert "environment variable name" in response.json()["detail"]
    assert not Secret.objects.exists()


def test_replacing_a_value_keeps_the_name_and_audits_it(workspace, api_as):
    # given
    client = api_as(Role.ADMIN)
    secret = make_secret(workspace)

    # when: only the value can change; the rest of the body is ignored
    response = client.patch(
        api_url(workspace, secret.code),
        {"value": OTHER_VALUE, "name": "RENAMED", "environment": "prod"},
        format="json",
    )

    # then
    assert response.status_code == 200
    assert response.json()["name"] == "API_KEY"
    assert OTHER_VALUE not in response.content.decode()
    secret.refresh_from_db()
    assert (secret.name, secret.environment, secret.reveal()) == ("API_KEY", "dev", OTHER_VALUE)
    assert actions(workspace) == ["secret.created", "secret.updated"]


def test_deleting_removes_the_value_and_audits_it(workspace, api_as):
    client = api_as(Role.ADMIN)
    secret = make_secret(workspace)

    response = client.delete(api_url(workspace, secret.code))

    assert response.status_code == 204
    assert not Secret.objects.exists()
    assert actions(workspace) == ["secret.created", "secret.deleted"]


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.REVIEWER, Role.READER])
def test_members_who_are_not_admins_are_refused(workspace, api_as, role):
    # given
    client = api_as(role)
    secret = make_secret(workspace)

    # when
    answers = [
        client.get(api_url(workspace)).status_code,
        client.post(
            api_url(workspace), {"name": "B_KEY", "environment": "dev", "value": VALUE}
        ).status_code,
        client.patch(api_url(workspace, secret.code), {"value": OTHER_VALUE}).status_code,
        client.delete(api_url(workspace, secret.code)).status_code,
    ]

    # then
    assert answers == [403, 403, 403, 403]
    assert Secret.objects.get().reveal() == VALUE
    assert actions(workspace) == ["secret.created"]


def test_agents_cannot_manage_secrets(workspace, agent_api):
    assert agent_api().get(api_url(workspace)).status_code == 403


def test_outsiders_and_other_workspaces_secrets_are_not_found(workspace, api_as, outsider_api):
    # given: an admin of another workspace, and a secret of this one
    secret = make_secret(workspace)
    other_admin = api_as(Role.ADMIN, ws=WorkspaceFactory())
    other = other_admin.user.memberships.get().workspace

    # when / then
    assert outsider_api.get(api_url(workspace)).status_code == 404
    assert other_admin.get(api_url(workspace)).status_code == 404
    assert other_admin.delete(api_url(other, secret.code)).status_code == 404
    assert Secret.objects.filter(pk=secret.pk).exists()


def test_granting_a_secret_to_a_profile_and_withdrawing_it(workspace, api_as):
    # given
    client = api_as(Role.ADMIN)
    secret = make_secret(workspace)
    profile = make_profile(workspace)
    grants = api_url(workspace, secret.code, "grants")

    # when
    first = client.post(grants, {"profile": str(profile.code)}, format="json")
    again = client.post(grants, {"profile": str(profile.code)}, format="json")
    withdrawn = client.delete(api_url(workspace, secret.code, "grants", profile.code))
    withdrawn_again = client.delete(api_url(workspace, secret.code, "grants", profile.code))

    # then
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["granted_to"] == [{"id": str(profile.code), "name": "Devon"}]
    assert (withdrawn.status_code, withdrawn_again.status_code) == (204, 404)
    assert not profile.granted_secrets.exists()
    assert actions(workspace) == ["secret.created", "secret.granted", "secret.ungranted"]


def test_a_profile_of_another_workspace_cannot_be_granted(workspace, api_as):
    client = api_as(Role.ADMIN)
    secret = make_secret(workspace)
    foreign = make_profile(WorkspaceFactory())

    response = client.post(
        api_url(workspace, secret.code, "grants"), {"profile": str(foreign.code)}, format="json"
    )

    assert response.status_code == 404
    assert not foreign.granted_secrets.exists()


# --- the page -------------------------------------------------------------------------


def page_url(workspace, tail="") -> str:
    return f"/w/{workspace.code}/secrets/{tail}"


@pytest.fixture
def admin_client(workspace, member) -> Client:
    client = Client()
    client.force_login(member(Role.ADMIN))
    return client


def test_the_page_shows_the_matrix_masked(workspace, admin_client):
    # given
    make_secret(workspace, "API_KEY", "dev", VALUE)
    make_secret(workspace, "API_KEY", "prod", OTHER_VALUE)
    make_profile(workspace)

    # when
    response = admin_client.get(page_url(workspace))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert VALUE not in html and OTHER_VALUE not in html
    assert html.count('<span class="masked"') == 2
    assert html.count("not set") == 1  # API_KEY has no staging value
    assert 'id="grants-form-' in html


def test_the_page_reads_the_same_number_of_queries_however_many_secrets(workspace, admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(page_url(workspace)).status_code == 200
        return len(captured)

    # given: one secret and one profile, then many of both, all granted
    first = make_profile(workspace, "Orion")
    first.granted_secrets.add(make_secret(workspace, "FIRST_KEY"))
    few = queries()
    for n in range(4):
        profile = make_profile(workspace, f"Agent {n}")
        for environment in ("dev", "staging", "prod"):
            profile.granted_secrets.add(make_secret(workspace, f"KEY_{n}", environment))

    # when / then
    assert queries() == few


def test_setting_replacing_and_deleting_from_the_page(workspace, admin_client):
    # when: set, replace, then delete the dev value of API_KEY
    set_form = {"name": "API_KEY", "environment": "dev", "value": VALUE}
    created = admin_client.post(page_url(workspace, "set/"), set_form)
    replaced = admin_client.post(page_url(workspace, "set/"), {**set_form, "value": OTHER_VALUE})
    secret = Secret.objects.get()
    value_after_replace = secret.reveal()
    deleted = admin_client.post(page_url(workspace, f"{secret.code}/delete/"))

    # then
    assert [r.status_code for r in (created, replaced, deleted)] == [302, 302, 302]
    assert value_after_replace == OTHER_VALUE
    assert not Secret.objects.exists()
    assert actions(workspace) == ["secret.created", "secret.updated", "secret.deleted"]


def test_a_refused_value_is_told_on_the_page(workspace, admin_client):
    response = admin_client.post(
        page_url(workspace, "set/"),
        {"name": "API_KEY", "environment": "dev", "value": "short"},
        follow=True,
    )
    assert "value must be at least 6 characters" in response.content.decode()
    assert not Secret.objects.exists()


def test_saving_a_profiles_grants_from_the_page(workspace, admin_client):
    # given
    keep, drop, add = (make_secret(workspace, name) for name in ("KEEP", "DROP", "ADD"))
    profile = make_profile(workspace)
    profile.granted_secrets.add(keep, drop)

    # when
    response = admin_client.post(
        page_url(workspace, f"grants/{profile.code}/"), {"secret": [keep.code, add.code]}
    )

    # then
    assert response.status_code == 302
    assert set(profile.granted_secrets.values_list("name", flat=True)) == {"KEEP", "ADD"}
    assert actions(workspace)[-2:] == ["secret.granted", "secret.ungranted"]


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.READER])
def test_the_page_refuses_members_who_are_not_admins(workspace, member, role):
    client = Client()
    client.force_login(member(role))
    assert client.get(page_url(workspace)).status_code == 403
    response = client.post(
        page_url(workspace, "set/"), {"name": "API_KEY", "environment": "dev", "value": VALUE}
    )
    assert response.status_code == 403
    assert not Secret.objects.exists()


def test_the_page_of_another_workspace_is_not_found(workspace, admin_client):
    assert admin_client.get(page_url(WorkspaceFactory())).status_code == 404


# --- rotation -------------------------------------------------------------------------


KEY_A, KEY_B, KEY_C = (crypto.Fernet.generate_key().decode() for _ in range(3))


def use_keys(monkeypatch, *keys: str) -> None:
    monkeypatch.setenv("CODEMAESTRO_SECRET_KEYS", ",".join(keys))
    crypto.reset_cipher()


@pytest.fixture
def restore_keys():
    yield
    crypto.reset_cipher()


def test_rotation_re_encrypts_with_the_newest_key_and_is_idempotent(
    workspace, monkeypatch, restore_keys, capsys
):
    # given: secrets written under key A
    from django.core.management import call_command

    use_keys(monkeypatch, KEY_A)
    written = {f"KEY_{n}": f"value-number-{n:04d}" for n in range(7)}
    for name, value in written.items():
        make_secret(workspace, name, value=value)
    before = dict(Secret.objects.values_list("name", "ciphertext"))

    # when: B becomes the newest key, A still listed
    use_keys(monkeypatch, KEY_B, KEY_A)
    call_command("rotate_secrets", "--batch-size", "3")
    first = capsys.readouterr().out
    call_command("rotate_secrets", "--batch-size", "3")
    second = capsys.readouterr().out

    # then: readable with B alone, every ciphertext changed once
    use_keys(monkeypatch, KEY_B)
    assert {s.name: s.reveal() for s in Secret.objects.all()} == written
    assert all(
        before[name] != text for name, text in Secret.objects.values_list("name", "ciphertext")
    )
    assert "7 secrets: 7 re-encrypted, 0 already under the newest key, 0 unreadable" in first
    assert "7 secrets: 0 re-encrypted, 7 already under the newest key, 0 unreadable" in second
    rotated = AuditEntry.objects.filter(workspace=None, action="secrets.rotated")
    assert [entry.details["rotated"] for entry in rotated.order_by("seq")] == [3, 3, 1]


def test_rotation_fails_clearly_on_an_unreadable_secret_and_leaves_it(
    workspace, monkeypatch, restore_keys
):
    # given: one secret under key C, which is not configured any more
    from django.core.management import CommandError, call_command

    use_keys(monkeypatch, KEY_A)
    make_secret(workspace, "READABLE", value="readable-value")
    use_keys(monkeypatch, KEY_C)
    lost = make_secret(workspace, "LOST", environment="prod", value="lost-value-01")
    use_keys(monkeypatch, KEY_B, KEY_A)

    # when
    with pytest.raises(CommandError, match="1 secret\\(s\\) cannot be decrypted"):
        call_command("rotate_secrets")

    # then
    assert Secret.objects.get(pk=lost.pk).ciphertext == lost.ciphertext
    use_keys(monkeypatch, KEY_B)
    assert Secret.objects.get(name="READABLE").reveal() == "readable-value"
