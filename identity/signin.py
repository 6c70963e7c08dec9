"""Signing in: password tries under lockout, the second step for TOTP users, audit entries.

The password check itself runs in `identity.backends.LockoutModelBackend` (so the admin's
sign-in counts too); these functions hold the rules around it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest

from identity import lockout, twofactor
from identity.lockout import Attempt, LockedOut

PENDING_KEY = "identity_pending_login"
# The second step must follow the password soon: a half-signed-in session left open on a
# shared machine should not stay one code away from a full sign-in.
PENDING_SECONDS = 300


def client_address(request: HttpRequest | None) -> str:
    """The caller's address: REMOTE_ADDR, or behind TRUSTED_PROXY_HOPS proxies the entry of
    X-Forwarded-For the outermost of them wrote (entries left of it are the client's word)."""
    if request is None:
        return ""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def password_attempt_begin(request: HttpRequest | None, username: str) -> Attempt:
    attempt = lockout.attempt_for(username=username, address=client_address(request))
    try:
        lockout.attempt_begin(attempt)
    except LockedOut:
        with transaction.atomic():
            _audit_failure(attempt, step="password", reason="locked_out")
        raise
    return attempt


def password_attempt_settle(request: HttpRequest | None, attempt: Attempt, user) -> None:
    if user is not None:
        lockout.attempt_passed(attempt)
        return
    with transaction.atomic():
        newly_locked = lockout.attempt_failed(attempt)
        _audit_failure(attempt, step="password", reason="bad_credentials")
        _audit_lockouts(attempt, newly_locked)


def code_check(request: HttpRequest, user, code: str, *, step: str) -> str | None:
    """Check a TOTP or recovery code under the user's lockout counters.

    Returns "totp" or "recovery" when accepted, None when wrong; raises LockedOut.
    """
    attempt = lockout.attempt_for(username=user.get_username(), address=client_address(request))
    try:
        lockout.attempt_begin(attempt)
    except LockedOut:
        with transaction.atomic():
            _audit_failure(attempt, step=step, reason="locked_out")
        raise
    method = twofactor.code_accept(user=user, code=code)
    if method is not None:
        lockout.attempt_passed(attempt)
        return method
    with transaction.atomic():
        newly_locked = lockout.attempt_failed(attempt)
        _audit_failure(attempt, step=step, reason="bad_code")
        _audit_lockouts(attempt, newly_locked)
    return None


@dataclass(frozen=True)
class PendingLogin:
    user: object
    backend: str
    redirect_to: str


def pending_login_begin(request: HttpRequest, user, *, redirect_to: str) -> None:
    """Remember a right password while the second step is asked; nobody is signed in yet."""
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "user_id": user.pk,
        "backend": user.backend,
        "redirect_to": redirect_to,
        "started": time.time(),
    }


def pending_login(request: HttpRequest) -> PendingLogin | None:
    data = request.session.get(PENDING_KEY)
    if not data or time.time() - data["started"] > PENDING_SECONDS:
        return None
    user = get_user_model().objects.filter(pk=data["user_id"], is_active=True).first()
    if user is None:
        return None
    return PendingLogin(user=user, backend=data["backend"], redirect_to=data["redirect_to"])


def pending_login_clear(request: HttpRequest) -> None:
    request.session.pop(PENDING_KEY, None)


def login_succeeded(request: HttpRequest | None, user) -> None:
    """After any completed sign-in (the `user_logged_in` signal): reset, then audit."""
    from audit.services import record_audit

    method = getattr(request, "identity_login_method", "direct") if request else "direct"
    label = f"user:{user.get_username()}"
    with transaction.atomic():
        lockout.username_reset(user.get_username())
        record_audit(
            workspace=None,
            actor=label,
            action="auth.login",
            target=label,
            details={"method": method, "address": client_address(request)},
        )


def _audit_failure(attempt: Attempt, *, step: str, reason: str) -> None:
    from audit.services import record_audit

    record_audit(
        workspace=None,
        actor="anonymous",
        action="auth.login_failed",
        target=f"user:{attempt.username}",
        details={"address": attempt.address, "step": step, "reason": reason},
    )


def _audit_lockouts(attempt: Attempt, scopes: list[str]) -> None:
    from audit.services import record_audit

    for scope in scopes:
        key = attempt.username if scope == lockout.Scope.USERNAME else attempt.address
        record_audit(
            workspace=None,
            actor="system",
            action="auth.lockout",
            target=f"{scope}:{key}",
            details={"address": attempt.address},
        )
