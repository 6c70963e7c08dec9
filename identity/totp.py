"""RFC 6238 time-based one-time passwords (HMAC-SHA1, 6 digits, 30-second steps).

Plain functions over a base32 secret, so the algorithm is tested against the RFC's own
vectors and the services add storage, replay protection and throttling around it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
# One step either side absorbs clock drift and the seconds a person takes to type.
WINDOW_STEPS = 1


def generate_secret() -> str:
    """A new 160-bit secret (the RFC's recommended length for SHA-1), base32 without padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret_b32: str) -> bytes:
    padded = secret_b32.upper() + "=" * (-len(secret_b32) % 8)
    return base64.b32decode(padded)


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest=hashlib.sha1) -> str:
    """RFC 4226: the HMAC of the counter, dynamically truncated to `digits` digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(timestamp: float) -> int:
    return int(timestamp // STEP_SECONDS)


def code_at(secret_b32: str, timestamp: float) -> str:
    return hotp(_key(secret_b32), step_at(timestamp))


def matching_step(secret_b32: str, code: str, *, now: float | None = None) -> int | None:
    """The time step within the window whose code equals `code`, newest first, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = _key(secret_b32)
    current = step_at(time.time() if now is None else now)
    for step in range(current + WINDOW_STEPS, current - WINDOW_STEPS - 1, -1):
        if hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def provisioning_uri(secret_b32: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps read from the QR code."""
    label = quote(f"{issuer}:{account}", safe=":@")
    params = urlencode(
        {
            "secret": secret_b32,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{params}"
