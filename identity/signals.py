"""Receivers of Django's sign-in signals; failed tries are recorded by the lockout backend."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from identity import signin


@receiver(user_logged_in, dispatch_uid="identity.login_succeeded")
def _on_user_logged_in(sender, request, user, **kwargs) -> None:
    signin.login_succeeded(request, user)
