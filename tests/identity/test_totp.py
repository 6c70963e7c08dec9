from __future__ import annotations

import base64
import re
import time

import pytest
from django.test import Client

from accounts.crypto import decrypt
from audit.models import AuditEntry
from identity import totp, twofactor
from identity.models import RecoveryCode, TotpDevice
from tests.factories import UserFactory

PASSWORD = "pw-for-tests-1"
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_codes_match_the_rfc_6238_sha1_vectors(timestamp, expected):
    key = base64.b32decode(RFC_SECRET)

    assert totp.hotp(key, totp.step_at(timestamp), digits=8) == expected


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-60, False), (-30, True), (0, True), (30, True), (60, False)]
)
def test_a_code_is_accepted_one_step_either_side_only(offset, accepted):
    now = 1_700_000_015.0
    code = totp.code_at(RFC_SECRET, now + offset)

    step = totp.matching_step(RFC_SECRET, code, now=now)

    assert (step == totp.step_at(now + offset)) if accepted else step is None


def test_malformed_codes_are_refused_without_computing():
    assert totp.matching_step(RFC_SECRET, "12345") is None
    assert totp.matching_step(RFC_SECRET, "abcdef") is None


def code_now(secret: str, steps_ahead: int = 0) -> str:
    return totp.code_at(secret, time.time() + steps_ahead * totp.STEP_SECONDS)


def enrolled(user) -> tuple[str, list[str]]:
    """Turn TOTP on for `user` through the services; return the secret and recovery codes."""
    device = twofactor.totp_enrolment_start(user=user)
    secret = twofactor.totp_secret(device)
    codes = twofactor.totp_enrolment_confirm(user=user, code=code_now(secret, -1))
    return secret, codes


def sign_in(client: Client, username: str, next_url: str = "/"):
    return client.post("/login/", {"username": username, "password": PASSWORD, "next": next_url})


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_enrolment_page_shows_uri_qr_and_key_and_stores_the_key_encrypted(client):
    # given
    user = UserFactory(username="ada")
    client.force_login(user)
    # when
    response = client.get("/account/two-factor/enrol/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    secret = re.search(r'<code id="totp-key">([A-Z2-7]+)</code>', page)[1]
    assert len(secret) == 32
    uri = f"otpauth://totp/CodeMaestro:ada?secret={secret}&amp;issuer=CodeMaestro"
    assert uri in page
    assert "<svg" in page and 'class="segno"' in page
    device = TotpDevice.objects.get(user=user)
    assert secret not in device.secret_ciphertext
    assert decrypt(device.secret_ciphertext) == secret
    assert not device.is_confirmed
    # and a reload shows the same key, so a scanned code stays valid
    assert secret in client.get("/account/two-factor/enrol/").content.decode()


@pytest.mark.django_db
def test_enrolment_needs_a_valid_code_then_shows_recovery_codes_once(client):
    # given
    user = UserFactory(username="ada")
    client.force_login(user)
    client.get("/account/two-factor/enrol/")
    secret = twofactor.totp_secret(TotpDevice.objects.get(user=user))
    # when a wrong code is given
    wrong = client.post("/account/two-factor/enrol/", {"code": "000000"})
    # then nothing is turned on
    assert wrong.status_code == 400
    assert "That code is not valid" in wrong.content.decode()
    assert not twofactor.totp_enabled(user)
    assert not AuditEntry.objects.filter(action="auth.totp_enabled").exists()
    # when the right code is given
    right = client.post("/account/two-factor/enrol/", {"code": code_now(secret)})
    # then
    assert right.status_code == 200
    assert right["Cache-Control"].startswith("max-age=0, no-cache, no-store")
    shown = re.findall(r"<li><code>([a-z2-9-]+)</code></li>", right.content.decode())
    assert len(shown) == 10
    stored = set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10
    assert not any(code in stored for code in shown)
    assert twofactor.totp_enabled(user)
    assert AuditEntry.objects.get(action="auth.totp_enabled").target == "user:ada"


@pytest.mark.django_db
def test_password_alone_does_not_sign_in_an_enrolled_user(client):
    # given
    user = UserFactory(username="ada")
    enrolled(user)
    # when
    response = sign_in(client, "ada", next_url="/w/elsewhere/")
    # then the code is asked, and nobody is signed in yet
    assert response.status_code == 302
    assert response["Location"] == "/login/verify/"
    assert not is_signed_in(client)
    assert client.get("/").status_code == 302
    assert client.get("/login/verify/").status_code == 200
    assert not AuditEntry.objects.filter(action="auth.login").exists()


@pytest.mark.django_db
def test_the_right_code_completes_the_sign_in(client):
    # given
    user = UserFactory(username="ada")
    secret, _ = enrolled(user)
    sign_in(client, "ada", next_url="/review/")
    # when
    response = client.post("/login/verify/", {"code": code_now(secret, +1)})
    # then
    assert response.status_code == 302
    assert response["Location"] == "/review/"
    assert int(client.session["_auth_user_id"]) == user.pk
    entry = AuditEntry.objects.get(action="auth.login")
    assert entry.details["method"] == "password+totp"


@pytest.mark.django_db
def test_a_used_code_cannot_be_replayed(client):
    # given a code accepted once
    user = UserFactory(username="ada")
    secret, _ = enrolled(user)
    code = code_now(secret, +1)
    sign_in(client, "ada")
    assert client.post("/login/verify/", {"code": code}).status_code == 302
    # when it is presented again in a second sign-in
    other = Client()
    sign_in(other, "ada")
    response = other.post("/login/verify/", {"code": code})
    # then
    assert response.status_code == 400
    assert "That code is not valid (or was used already)." in response.content.decode()
    assert not is_signed_in(other)


@pytest.mark.django_db
def test_an_older_code_is_refused_after_a_newer_one_was_used():
    user = UserFactory(username="ada")
    secret, _ = enrolled(user)  # used the previous step's code
    newer = code_now(secret, +1)

    assert twofactor.code_accept(user=user, code=newer) == "totp"
    assert twofactor.code_accept(user=user, code=code_now(secret)) is None


@pytest.mark.django_db
def test_a_recovery_code_signs_in_once(client):
    # given
    user = UserFactory(username="ada")
    _, codes = enrolled(user)
    sign_in(client, "ada")
    # when
    first = client.post("/login/verify/", {"code": codes[3].upper()})
    # then
    assert first.status_code == 302
    assert is_signed_in(client)
    assert AuditEntry.objects.get(action="auth.login").details["method"] == "password+recovery"
    assert twofactor.recovery_codes_left(user) == 9
    # and the same code fails the next time
    other = Client()
    sign_in(other, "ada")
    assert other.post("/login/verify/", {"code": codes[3]}).status_code == 400


@pytest.mark.django_db
def test_wrong_codes_count_towards_the_lockout(client):
    # given
    user = UserFactory(username="ada")
    secret, _ = enrolled(user)
    sign_in(client, "ada")
    for _ in range(5):
        assert client.post("/login/verify/", {"code": "000000"}).status_code == 400
    # when
    response = client.post("/login/verify/", {"code": code_now(secret, +1)})
    # then the right code is refused unchecked, and the half sign-in is dropped
    assert response.status_code == 429
    assert "Too many failed attempts; try again in 15 minutes." in response.content.decode()
    assert not is_signed_in(client)
    assert client.get("/login/verify/")["Location"] == "/login/"
    failures = AuditEntry.objects.filter(action="auth.login_failed", details__step="totp")
    assert failures.count() == 6
    assert AuditEntry.objects.filter(action="auth.lockout").count() == 1


@pytest.mark.django_db
def test_the_code_step_expires(client, monkeypatch):
    user = UserFactory(username="ada")
    secret, _ = enrolled(user)
    sign_in(client, "ada")
    later = time.time() + 301
    monkeypatch.setattr("identity.signin.time.time", lambda: later)

    response = client.post("/login/verify/", {"code": code_now(secret, +1)})

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert not is_signed_in(client)


@pytest.mark.django_db
def test_the_code_step_without_a_password_goes_back_to_sign_in(client):
    response = client.post("/login/verify/", {"code": "123456"})

    assert response["Location"] == "/login/"


@pytest.mark.django_db
def test_turning_off_needs_a_current_code(client):
    # given
    user = UserFactory(username="ada")
    secret, _ = enrolled(user)
    client.force_login(user)
    # when a wrong code is given
    client.post("/account/two-factor/disable/", {"code": "999999"})
    # then it stays on
    assert twofactor.totp_enabled(user)
    assert not AuditEntry.objects.filter(action="auth.totp_disabled").exists()
    # when a current code is given
    response = client.post("/account/two-factor/disable/", {"code": code_now(secret, +1)})
    # then it is off, with its recovery codes gone
    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not RecoveryCode.objects.filter(user=user).exists()
    assert AuditEntry.objects.get(action="auth.totp_disabled").actor == "user:ada"
    assert sign_in(Client(), "ada").status_code == 302


@pytest.mark.django_db
def test_new_recovery_codes_replace_the_old_with_a_current_code(client):
    user = UserFactory(username="ada")
    secret, old_codes = enrolled(user)
    client.force_login(user)

    response = client.post("/account/two-factor/recovery-codes/", {"code": code_now(secret, +1)})

    assert response.status_code == 200
    new_codes = re.findall(r"<li><code>([a-z2-9-]+)</code></li>", response.content.decode())
    assert len(new_codes) == 10
    assert twofactor.code_accept(user=user, code=old_codes[0]) is None
    assert twofactor.code_accept(user=user, code=new_codes[0]) == "recovery"


@pytest.mark.django_db
def test_two_factor_pages_need_a_signed_in_user(client):
    for url in ("/account/two-factor/", "/account/two-factor/enrol/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
