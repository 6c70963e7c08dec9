from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.identity.oidc_provider import LocalOidcProvider


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Sign-in tests check many passwords; the hasher's strength is not what they prove.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def oidc_server():
    server = LocalOidcProvider().start()
    yield server
    server.stop()


@pytest.fixture
def oidc(oidc_server, settings):
    """The local provider, reset for this test, with a person of example.com to sign in."""
    settings.IDENTITY_OIDC_ALLOW_LOCAL_HTTP = True
    oidc_server.reset(email="ada@example.com", name="Ada")
    cache.clear()
    yield oidc_server
    cache.clear()
