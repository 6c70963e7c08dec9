from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from accounts import crypto
from identity import twofactor
from identity.models import OidcProvider, TotpDevice
from identity.rotation import identity_secrets_rotate
from tests.factories import UserFactory, WorkspaceFactory


@pytest.fixture
def keys(monkeypatch):
    """Set CODEMAESTRO_SECRET_KEYS (newest first) for the rest of the test."""

    def use(*keys: str) -> None:
        monkeypatch.setenv("CODEMAESTRO_SECRET_KEYS", ",".join(keys))
        crypto.reset_cipher()

    yield use
    monkeypatch.delenv("CODEMAESTRO_SECRET_KEYS", raising=False)
    crypto.reset_cipher()


@pytest.mark.django_db
def test_rotation_re_encrypts_totp_keys_and_client_secrets_so_the_old_key_can_go(keys):
    # given values written under the old key
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old)
    device = twofactor.totp_enrolment_start(user=UserFactory())
    secret = twofactor.totp_secret(device)
    provider = OidcProvider(
        workspace=WorkspaceFactory(),
        issuer="https://login.example.com",
        client_id="cm",
        allowed_email_domain="example.com",
    )
    provider.set_client_secret("client-secret")
    provider.save()
    # when the new key is put first and rotation runs
    keys(new, old)
    report = identity_secrets_rotate()
    # then everything reads under the new key alone
    assert (report.total, report.rotated, report.unreadable) == (2, 2, [])
    keys(new)
    assert twofactor.totp_secret(TotpDevice.objects.get(pk=device.pk)) == secret
    assert OidcProvider.objects.get(pk=provider.pk).client_secret() == "client-secret"
    # and a second run changes nothing
    assert identity_secrets_rotate().rotated == 0


@pytest.mark.django_db
def test_rotate_secrets_command_also_re_encrypts_the_sign_in_keys(keys):
    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old)
    device = twofactor.totp_enrolment_start(user=UserFactory())
    secret = twofactor.totp_secret(device)
    keys(new, old)
    call_command("rotate_secrets")
    keys(new)
    assert twofactor.totp_secret(TotpDevice.objects.get(pk=device.pk)) == secret
