"""Sign-in state: failure counters for lockout, TOTP devices, recovery codes, workspace SSO.

Secrets (TOTP keys, OIDC client secrets) are stored encrypted with `accounts.crypto`;
recovery codes only as hashes.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Role, Workspace


class LoginThrottle(models.Model):
    """Failed sign-in attempts for one username or one client address in the current window.

    A row is updated only under a row lock (see `identity.lockout`), so concurrent attempts
    are counted exactly.
    """

    class Scope(models.TextChoices):
        USERNAME = "username", "Username"
        ADDRESS = "address", "Client address"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    key = models.CharField(max_length=255)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="identity_unique_throttle"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.failures} failures"


class TotpDevice(models.Model):
    """A user's authenticator app; active once confirmed with a valid code."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device"
    )
    secret_ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The newest time step accepted: a code of that step or an older one is refused, so a
    # code seen once (shoulder-surfed, phished) cannot be replayed.
    last_used_step = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"TOTP of {self.user}"

    def __repr__(self) -> str:
        return f"<TotpDevice user={self.user_id} ******>"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class RecoveryCode(models.Model):
    """A single-use code for when the authenticator is lost; only its SHA-256 is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "code_hash"], name="identity_unique_recovery"),
        ]

    def __str__(self) -> str:
        return f"recovery code of {self.user}"


class OidcProvider(models.Model):
    """A workspace's OpenID Connect identity provider (authorization code flow with PKCE)."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="oidc_provider"
    )
    issuer = models.URLField(
        max_length=300,
        help_text="The issuer URL; its /.well-known/openid-configuration is read.",
    )
    client_id = models.CharField(max_length=255)
    client_secret_ciphertext = models.TextField(editable=False)
    allowed_email_domain = models.CharField(
        max_length=255,
        help_text="Only verified emails of this domain may sign in (e.g. example.com).",
    )
    default_role = models.CharField(max_length=16, choices=Role.choices, default=Role.READER)
    create_users = models.BooleanField(
        default=True, help_text="Create an account for a new person of the allowed domain."
    )
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OIDC provider"

    def __str__(self) -> str:
        return f"SSO for {self.workspace}"

    def __repr__(self) -> str:
        return f"<OidcProvider {self.issuer} client={self.client_id} ******>"

    def set_client_secret(self, plaintext: str) -> None:
        from accounts.crypto import encrypt

        self.client_secret_ciphertext = encrypt(plaintext)

    def client_secret(self) -> str:
        from accounts.crypto import decrypt

        return decrypt(self.client_secret_ciphertext)


class OidcIdentity(models.Model):
    """Which account a provider's subject signs in as, fixed at its first SSO sign-in."""

    provider = models.ForeignKey(OidcProvider, on_delete=models.CASCADE, related_name="identities")
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "OIDC identities"
        constraints = [
            models.UniqueConstraint(fields=["provider", "subject"], name="identity_unique_sub"),
            models.UniqueConstraint(fields=["provider", "user"], name="identity_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} via {self.provider}"
