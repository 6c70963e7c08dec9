"""SSO against the local provider (tests/identity/oidc_provider.py), over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Membership, Role
from audit.models import AuditEntry
from identity.models import OidcIdentity, OidcProvider
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.identity.oidc_provider import KEY_ID, new_rsa_key

User = get_user_model()


@pytest.fixture
def sso(oidc, db):
    """A workspace `acme` whose SSO is the local provider."""
    workspace = WorkspaceFactory(slug="acme", name="Acme")
    provider = OidcProvider(
        workspace=workspace,
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        allowed_email_domain="example.com",
        default_role=Role.REVIEWER,
    )
    provider.set_client_secret(oidc.client_secret)
    provider.save()
    return provider


def to_provider(client: Client, slug: str = "acme", next_url: str = "") -> httpx.Response:
    """Start SSO in Django, then follow its redirect to the provider over HTTP."""
    start = client.get(f"/sso/{slug}/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content
    answer = httpx.get(start["Location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer


def back_to_us(client: Client, answer: httpx.Response, **override: str):
    callback = urlsplit(answer.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(callback.query).items()} | override
    return client.get(f"{callback.path}?{urlencode(params)}")


def round_trip(client: Client, **override: str):
    return back_to_us(client, to_provider(client), **override)


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def assert_refused(client: Client, response, status: int, message: str) -> None:
    assert response.status_code == status
    assert message in response.content.decode()
    assert not is_signed_in(client)
    assert not Membership.objects.filter(workspace__slug="acme").exists()
    assert not OidcIdentity.objects.exists()
    assert not AuditEntry.objects.filter(action__in=["auth.oidc_login", "auth.login"]).exists()


@pytest.mark.django_db
def test_sso_creates_the_person_and_makes_them_a_member_with_the_default_role(client, oidc, sso):
    # given
    start = client.get("/sso/acme/?next=/review/")
    authorize = parse_qs(urlsplit(start["Location"]).query)
    # then the request carries state, nonce and an S256 PKCE challenge
    assert start["Location"].startswith(f"{oidc.issuer}/authorize?")
    assert authorize["code_challenge_method"] == ["S256"]
    assert len(authorize["code_challenge"][0]) == 43
    assert authorize["redirect_uri"] == ["http://testserver/sso/acme/callback/"]
    # when the provider answers and we exchange the code
    response = back_to_us(client, httpx.get(start["Location"], follow_redirects=False))
    # then
    assert response.status_code == 302
    assert response["Location"] == "/review/"
    user = User.objects.get(email="ada@example.com")
    assert int(client.session["_auth_user_id"]) == user.pk
    assert user.username == "ada"
    assert not user.has_usable_password()
    assert Membership.objects.get(workspace=sso.workspace, user=user).role == Role.REVIEWER
    assert OidcIdentity.objects.get(provider=sso).subject == oidc.person["sub"]
    entry = AuditEntry.objects.get(action="auth.oidc_login")
    assert entry.workspace_id == sso.workspace_id
    assert entry.details["created_account"] is True
    assert entry.details["role"] == Role.REVIEWER
    assert AuditEntry.objects.get(action="auth.login").details["method"] == "oidc"
    # and the token request authenticated the client, the secret never in the form
    assert oidc.token_requests[0]["code_verifier"]
    assert "client_secret" not in oidc.token_requests[0]


@pytest.mark.django_db
def test_sso_matches_an_existing_account_by_email_and_keeps_its_role(client, oidc, sso):
    ada = UserFactory(username="ada.l", email="Ada@Example.com")
    MembershipFactory(workspace=sso.workspace, user=ada, role=Role.ADMIN)

    response = round_trip(client)

    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == ada.pk
    assert User.objects.count() == 1
    assert Membership.objects.get(workspace=sso.workspace, user=ada).role == Role.ADMIN
    assert AuditEntry.objects.get(action="auth.oidc_login").details["joined_workspace"] is False


@pytest.mark.django_db
def test_sso_never_claims_an_existing_account_outside_the_workspace(client, oidc, sso):
    # given someone's account that belongs to another workspace only
    ada = UserFactory(username="ada", email="ada@example.com")
    MembershipFactory(user=ada, role=Role.ADMIN)
    # when the workspace's provider vouches for that email
    response = round_trip(client)
    # then
    assert response.status_code == 403
    assert "ask a workspace admin to invite it" in response.content.decode()
    assert not is_signed_in(client)
    assert not Membership.objects.filter(workspace=sso.workspace).exists()
    assert not OidcIdentity.objects.exists()


@pytest.mark.django_db
def test_sso_signs_in_the_linked_account_again_by_subject(client, oidc, sso):
    round_trip(client)
    client.logout()
    oidc.person["email"] = "ada.lovelace@example.com"  # renamed at the provider

    response = round_trip(client)

    assert response.status_code == 302
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_sso_refuses_a_wrong_state(client, oidc, sso):
    response = round_trip(client, state="forged-state")

    assert_refused(client, response, 400, "does not belong to a sign-in started here")
    assert oidc.token_requests == []


@pytest.mark.django_db
def test_sso_refuses_a_replayed_answer(client, oidc, sso):
    answer = to_provider(client)
    assert back_to_us(client, answer).status_code == 302
    client.logout()

    replay = back_to_us(client, answer)

    assert replay.status_code == 400
    assert not is_signed_in(client)


@pytest.mark.django_db
def test_sso_refuses_an_answer_for_another_workspace(client, oidc, sso):
    other = WorkspaceFactory(slug="other")
    provider = OidcProvider(
        workspace=other,
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        allowed_email_domain="example.com",
    )
    provider.set_client_secret(oidc.client_secret)
    provider.save()
    answer = to_provider(client, "other")
    callback = urlsplit(answer.headers["Location"])

    response = client.get(f"/sso/acme/callback/?{callback.query}")

    assert_refused(client, response, 400, "state mismatch")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"nonce": "someone-elses-nonce"}, "nonce does not match"),
        ({"audience": "another-client"}, "issued for another client"),
        ({"exp_offset": -3600}, "has expired"),
        ({"issuer": "https://impostor.example"}, "comes from another issuer"),
    ],
    ids=["wrong-nonce", "wrong-audience", "expired", "wrong-issuer"],
)
@pytest.mark.django_db
def test_sso_refuses_a_tampered_id_token(client, oidc, sso, tamper, message):
    for name, value in tamper.items():
        setattr(oidc.tamper, name, value)

    response = round_trip(client)

    assert_refused(client, response, 400, message)


@pytest.mark.django_db
def test_sso_refuses_a_bad_signature(client, oidc, sso):
    # given a token signed by another key under the published key's id
    oidc.tamper.signing_key = new_rsa_key()
    # when
    response = round_trip(client)
    # then
    assert_refused(client, response, 400, "signature does not verify")
    assert KEY_ID in str(oidc.jwks())


@pytest.mark.django_db
def test_sso_refuses_an_email_outside_the_allowed_domain(client, oidc, sso):
    oidc.person["email"] = "mallory@evil.example"

    response = round_trip(client)

    assert_refused(client, response, 403, "Accounts of evil.example may not sign in")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_sso_refuses_an_unverified_email(client, oidc, sso):
    oidc.person["email_verified"] = False

    response = round_trip(client)

    assert_refused(client, response, 403, "no verified email address")


@pytest.mark.django_db
def test_sso_never_signs_in_a_staff_account_even_a_member(client, oidc, sso):
    root = UserFactory(username="root", email="ada@example.com", is_staff=True)
    MembershipFactory(workspace=sso.workspace, user=root, role=Role.ADMIN)

    response = round_trip(client)

    assert response.status_code == 403
    assert "signs in with its password" in response.content.decode()
    assert not is_signed_in(client)
    assert not OidcIdentity.objects.exists()
    assert not AuditEntry.objects.filter(action__in=["auth.oidc_login", "auth.login"]).exists()


@pytest.mark.django_db
def test_sso_creates_no_account_when_the_workspace_says_so(client, oidc, sso):
    sso.create_users = False
    sso.save()

    response = round_trip(client)

    assert_refused(client, response, 403, "creates none")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_sso_reports_a_provider_that_refuses_the_client(client, oidc, sso):
    sso.set_client_secret("not-the-secret")
    sso.save()

    response = round_trip(client)

    assert_refused(client, response, 502, "refused the authorization code (HTTP 401)")
    assert "not-the-secret" not in response.content.decode()


@pytest.mark.django_db
def test_sso_reports_an_unreachable_provider(client, sso):
    sso.issuer = "http://127.0.0.1:9"  # discard port: nothing listens
    sso.save()

    response = client.get("/sso/acme/")

    assert response.status_code == 502
    assert "could not be reached" in response.content.decode()


@pytest.mark.django_db
def test_sso_answers_the_same_404_for_unknown_workspaces_and_ones_without_sso(client, oidc, sso):
    WorkspaceFactory(slug="plain")
    sso.is_enabled = False
    sso.save()

    for slug in ("nowhere", "plain", "acme"):
        assert client.get(f"/sso/{slug}/").status_code == 404


@pytest.mark.django_db
def test_sso_chooser_sends_to_the_workspace(client):
    response = client.get("/sso/?workspace=Acme&next=/review/")

    assert response["Location"] == "/sso/acme/?next=%2Freview%2F"


@pytest.mark.django_db
def test_client_secret_is_stored_encrypted(sso, oidc):
    stored = OidcProvider.objects.get(pk=sso.pk)

    assert oidc.client_secret not in stored.client_secret_ciphertext
    assert stored.client_secret() == oidc.client_secret
    assert oidc.client_secret not in repr(stored)
