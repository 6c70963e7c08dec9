"""Re-encrypting identity's stored secrets (TOTP keys, OIDC client secrets) with the newest key.

`manage.py rotate_secrets` re-encrypts workspace secrets; these columns use the same keys
(`accounts.crypto`), so the command must rotate them too before an old key is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from accounts import crypto
from identity.models import OidcProvider, TotpDevice

# (model, encrypted column): every place identity keeps ciphertext.
ENCRYPTED_COLUMNS = [
    (TotpDevice, "secret_ciphertext"),
    (OidcProvider, "client_secret_ciphertext"),
]


@dataclass
class IdentityRotation:
    total: int = 0
    rotated: int = 0
    unreadable: list[str] = field(default_factory=list)


def identity_secrets_rotate() -> IdentityRotation:
    """Re-encrypt each stored value the newest key does not already encrypt.

    There are few such rows (one per enrolled person, one per workspace with SSO), so each
    table is one transaction. An unreadable value is left as it was and reported.
    """
    crypto.reset_cipher()
    report = IdentityRotation()
    for model, column in ENCRYPTED_COLUMNS:
        with transaction.atomic():
            for row in model.objects.select_for_update().only("pk", column).order_by("pk"):
                report.total += 1
                value = getattr(row, column)
                if crypto.is_current(value):
                    continue
                try:
                    setattr(row, column, crypto.rotate(value))
                except crypto.SecretUnreadable:
                    report.unreadable.append(f"{model._meta.label} #{row.pk}")
                    continue
                row.save(update_fields=[column])
                report.rotated += 1
    return report
