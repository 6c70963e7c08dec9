"""Who an SSO sign-in is: matching or creating the account and making it a member."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership
from accounts.services import membership_set
from identity.models import OidcIdentity, OidcProvider
from identity.oidc import OidcError


@transaction.atomic
def oidc_user_sign_in(*, provider: OidcProvider, claims: dict[str, Any]):
    """The account a verified id_token signs in as, made a member of the provider's workspace.

    The provider's subject is linked to one account at its first sign-in (matched by email,
    or created), and must stay with it. A workspace's provider is run by that workspace's
    admins, so it may only claim an existing account that already belongs to the workspace
    (an accepted invite), never a stranger's or an operator's (staff) account: otherwise
    an admin could mint an id_token for anyone's email and take over their account.
    """
    email = _verified_email(provider, claims)
    link = OidcIdentity.objects.select_related("user").filter(
        provider=provider, subject=str(claims["sub"])
    )
    link = link.first()
    created = False
    if link is None:
        user, created = _account_for(provider, email)
        if OidcIdentity.objects.filter(provider=provider, user=user).exists():
            raise OidcError("This account is linked to another identity at this provider.", 409)
        link = OidcIdentity.objects.create(provider=provider, subject=str(claims["sub"]), user=user)
    user = link.user
    if not user.is_active:
        raise OidcError("This account is disabled.", 403)
    if user.is_staff or user.is_superuser:
        raise OidcError("This account signs in with its password, not through SSO.", 403)
    link.last_login_at = timezone.now()
    link.save(update_fields=["last_login_at"])
    joined = not Membership.objects.filter(workspace=provider.workspace, user=user).exists()
    if joined:
        membership_set(workspace=provider.workspace, user=user, role=provider.default_role)
    _audit(provider, user, email=email, created=created, joined=joined)
    return user


def _verified_email(provider: OidcProvider, claims: dict[str, Any]) -> str:
    email = str(claims.get("email") or "").strip()
    # Some providers send the flag as a string.
    if not email or claims.get("email_verified") not in (True, "true"):
        raise OidcError("The identity provider gave no verified email address.", 403)
    domain = email.rsplit("@", 1)[-1].lower()
    if "@" not in email or domain != provider.allowed_email_domain.strip().lower():
        raise OidcError(f"Accounts of {domain} may not sign in to this workspace.", 403)
    return email


def _account_for(provider: OidcProvider, email: str):
    users = get_user_model().objects
    matches = list(users.filter(email__iexact=email)[:2])
    if len(matches) > 1:
        raise OidcError("Several accounts use this email; ask an administrator.", 409)
    if matches:
        user = matches[0]
        if not Membership.objects.filter(workspace=provider.workspace, user=user).exists():
            raise OidcError(
                "An account with this email already exists; ask a workspace admin to invite "
                "it, then sign in with SSO.",
                403,
            )
        return user, False
    if not provider.create_users:
        raise OidcError("No account uses this email, and this workspace creates none.", 403)
    # No password: this account signs in through its provider only.
    return users.create_user(username=_free_username(email), email=email), True


def _free_username(email: str) -> str:
    base = re.sub(r"[^\w.@+-]", "", email.split("@")[0])[:140] or "user"
    users = get_user_model().objects
    candidate, n = base, 1
    while users.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate


def _audit(provider: OidcProvider, user, *, email: str, created: bool, joined: bool) -> None:
    from audit.services import record_audit

    label = f"user:{user.get_username()}"
    record_audit(
        workspace=provider.workspace,
        actor=label,
        action="auth.oidc_login",
        target=label,
        details={
            "issuer": provider.issuer,
            "email": email,
            "created_account": created,
            "joined_workspace": joined,
            "role": provider.default_role if joined else None,
        },
    )


@transaction.atomic
def provider_save(*, form, actor: str) -> OidcProvider:
    """Save a workspace's SSO settings from a valid `OidcProviderForm`, audited."""
    from audit.services import record_audit

    secret_changed = bool(form.cleaned_data.get("client_secret"))
    provider = form.save()
    record_audit(
        workspace=provider.workspace,
        actor=actor,
        action="sso.configured",
        target=f"oidc:{provider.code}",
        details={
            "issuer": provider.issuer,
            "client_id": provider.client_id,
            "allowed_email_domain": provider.allowed_email_domain,
            "default_role": provider.default_role,
            "create_users": provider.create_users,
            "enabled": provider.is_enabled,
            "client_secret_changed": secret_changed,
        },
    )
    return provider
