"""The password backend with lockout, so every password sign-in (ours, the admin's) counts."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from identity import signin
from identity.lockout import LockedOut


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend behind the failure counters of `identity.lockout`.

    A locked-out try raises PermissionDenied, which stops the other backends too; the
    reason is left on the request (`identity_locked_out`) for the form's message.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            attempt = signin.password_attempt_begin(request, username)
        except LockedOut as locked:
            if request is not None:
                request.identity_locked_out = locked
            raise PermissionDenied(locked.message) from None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        signin.password_attempt_settle(request, attempt, user)
        return user
