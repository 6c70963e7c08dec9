"""Encryption of stored secrets with MultiFernet, so keys can rotate.

CODEMAESTRO_SECRET_KEYS holds comma-separated Fernet keys, newest first (it encrypts; all of
them decrypt). Without it, one key is derived from SECRET_KEY, which suits the embedded
default but ties the secrets to that key.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from codemaestro.env import env_list


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key."""


@cache
def _cipher() -> MultiFernet:
    raw_keys = env_list("CODEMAESTRO_SECRET_KEYS", [])
    if not raw_keys:
        digest = hashlib.sha256(("codemaestro-secrets:" + settings.SECRET_KEY).encode()).digest()
        raw_keys = [base64.urlsafe_b64encode(digest).decode()]
    try:
        return MultiFernet([Fernet(key) for key in raw_keys])
    except ValueError:
        raise ImproperlyConfigured(
            "CODEMAESTRO_SECRET_KEYS must hold Fernet keys (32 url-safe base64 bytes each)"
        ) from None


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _cipher().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "stored secret cannot be decrypted with the configured keys"
        ) from None


def reset_cipher() -> None:
    """Forget the cached keys (after the environment changed, e.g. during rotation)."""
    _cipher.cache_clear()
