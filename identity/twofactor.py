"""TOTP two-factor: enrolment, confirmation, checking codes once, recovery codes, disabling."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.crypto import decrypt, encrypt
from identity import totp
from identity.models import RecoveryCode, TotpDevice

ISSUER = "CodeMaestro"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


class TwoFactorError(Exception):
    """A two-factor change refused, with a message for the person."""


def totp_enabled(user) -> bool:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def totp_enrolment_start(*, user) -> TotpDevice:
    """The unconfirmed device to show (a fresh secret, or the one already shown)."""
    device = TotpDevice.objects.filter(user=user).first()
    if device is not None and device.is_confirmed:
        raise TwoFactorError("Two-factor authentication is already on.")
    if device is None:
        device = TotpDevice.objects.create(
            user=user, secret_ciphertext=encrypt(totp.generate_secret())
        )
    return device


def totp_secret(device: TotpDevice) -> str:
    return decrypt(device.secret_ciphertext)


def totp_uri(device: TotpDevice) -> str:
    return totp.provisioning_uri(
        totp_secret(device), account=device.user.get_username(), issuer=ISSUER
    )


@transaction.atomic
def totp_enrolment_confirm(*, user, code: str) -> list[str]:
    """Turn two-factor on with a first valid code; return the new recovery codes (shown once)."""
    device = TotpDevice.objects.select_for_update().filter(user=user).first()
    if device is None:
        raise TwoFactorError("Start the set-up first.")
    if device.is_confirmed:
        raise TwoFactorError("Two-factor authentication is already on.")
    step = totp.matching_step(totp_secret(device), code)
    if step is None:
        raise TwoFactorError("That code is not valid; check the clock of your device.")
    device.confirmed_at = timezone.now()
    device.last_used_step = step
    device.save(update_fields=["confirmed_at", "last_used_step"])
    codes = _recovery_codes_replace(user)
    _audit(user, "auth.totp_enabled")
    return codes


def code_accept(*, user, code: str) -> str | None:
    """Use up a TOTP or recovery code of `user`: "totp", "recovery", or None if refused.

    A TOTP code is accepted only for a time step newer than the last one used, set with a
    conditional UPDATE, so the same code presented twice (even at once) passes once.
    """
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is None:
        return None
    step = totp.matching_step(totp_secret(device), code)
    if step is not None:
        claimed = TotpDevice.objects.filter(pk=device.pk, last_used_step__lt=step).update(
            last_used_step=step
        )
        return "totp" if claimed else None
    used = RecoveryCode.objects.filter(
        user=user, code_hash=_recovery_hash(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return "recovery" if used else None


@transaction.atomic
def totp_disable(*, user, actor: str = "") -> None:
    """Turn two-factor off; the caller has checked a current code (`signin.code_check`)
    or is an administrator (`actor`) helping someone who lost every factor."""
    deleted, _ = TotpDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    if deleted:
        _audit(user, "auth.totp_disabled", actor=actor)


@transaction.atomic
def recovery_codes_regenerate(*, user) -> list[str]:
    """New recovery codes replacing the old; the caller has checked a current code."""
    if not totp_enabled(user):
        raise TwoFactorError("Two-factor authentication is off.")
    codes = _recovery_codes_replace(user)
    _audit(user, "auth.recovery_codes_regenerated")
    return codes


def recovery_codes_left(user) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def _recovery_codes_replace(user) -> list[str]:
    RecoveryCode.objects.filter(user=user).delete()
    codes = [_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(user=user, code_hash=_recovery_hash(code)) for code in codes]
    )
    return codes


def _recovery_code() -> str:
    # 12 characters of a 31-letter alphabet: about 59 random bits, enough for a plain hash.
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def _recovery_hash(code: str) -> str:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


def _audit(user, action: str, *, actor: str = "") -> None:
    from audit.services import record_audit

    label = f"user:{user.get_username()}"
    record_audit(workspace=None, actor=actor or label, action=action, target=label)
