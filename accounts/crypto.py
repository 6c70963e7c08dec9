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
def _keys() -> tuple[Fernet, ...]:
    raw_keys = env_list("CODEMAESTRO_SECRET_KEYS", [])
    if not raw_keys:
        digest = hashlib.sha256(("codemaestro-secrets:" + settings.SECRET_KEY).encode()).digest()
        raw_keys = [base64.urlsafe_b64encode(digest).decode()]
    try:
        return tuple(Fernet(key) for key in raw_keys)
    except ValueError:
        raise ImproperlyConfigured(
            "CODEMAESTRO_SECRET_KEYS must hold Fernet keys (32 url-safe base64 bytes each)"
        ) from None


@cache
def _cipher() -> MultiFernet:
    return MultiFernet(list(_keys()))


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _cipher().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "stored secret cannot be decrypted with the configured keys"
        ) from None


def is_current(ciphertext: str) -> bool:
    """Whether the newest key already encrypts this value (rotation leaves it alone)."""
    try:
        _keys()[0].decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def rotate(ciphertext: str) -> str:
    """The value re-encrypted with the newest key, without handing the clear value out."""
    try:
        return _cipher().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "stored secret cannot be decrypted with the configured keys"
        ) from None


def reset_cipher() -> None:
    """Forget the cached keys (after the environment changed, e.g. during rotation)."""
    _keys.cache_clear()
    _cipher.cache_clear()


# Other apps keep ciphertext made with these keys too (identity: TOTP keys, SSO client
# secrets). They register a function here so `rotate_secrets` re-encrypts everything before
# an old key is dropped, without accounts importing them.
_rotations: dict[str, object] = {}


def register_rotation(label: str, rotate_all) -> None:
    """`rotate_all()` re-encrypts the app's values; returns an object with total, rotated
    and unreadable (a list of labels, never values)."""
    _rotations[label] = rotate_all


def registered_rotations() -> dict[str, object]:
    return dict(_rotations)
