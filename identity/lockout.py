"""Lockout after repeated failed sign-ins, per username and per client address.

Every try first *reserves* a place on both counters under a row lock and is refused when
the budget is used up, so fifty concurrent guesses against a limit of five get at most five
password (or code) checks. A failed try keeps its reservation; a right password gives it
back; a completed sign-in clears the username's counter. Counters of unknown usernames work
the same way, so a lockout never tells whether an account exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from identity.models import LoginThrottle

Scope = LoginThrottle.Scope


@dataclass(frozen=True)
class Attempt:
    """One sign-in try holding a place on its counters until it is settled."""

    username: str
    address: str

    def counters(self) -> list[tuple[str, str]]:
        # Always username before address: every writer locks rows in this order.
        keys = [(Scope.USERNAME, self.username)]
        if self.address:
            keys.append((Scope.ADDRESS, self.address))
        return keys


class LockedOut(Exception):
    """Too many failed tries: refused without checking the credentials."""

    def __init__(self, until: datetime) -> None:
        super().__init__("too many failed attempts")
        self.until = until

    @property
    def minutes_left(self) -> int:
        seconds = (self.until - timezone.now()).total_seconds()
        return max(1, math.ceil(seconds / 60))

    @property
    def message(self) -> str:
        minutes = self.minutes_left
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many failed attempts; try again in {minutes} {unit}."


def _policy() -> dict[str, int]:
    return settings.IDENTITY_LOCKOUT


def _limit(scope: str) -> int:
    policy = _policy()
    return policy["ATTEMPTS"] if scope == Scope.USERNAME else policy["ADDRESS_ATTEMPTS"]


def attempt_for(*, username: str, address: str | None) -> Attempt:
    return Attempt(username=username.strip().lower()[:255], address=(address or "")[:255])


def _locked_rows(attempt: Attempt, now: datetime) -> list[LoginThrottle]:
    LoginThrottle.objects.bulk_create(
        [LoginThrottle(scope=s, key=k, window_started_at=now) for s, k in attempt.counters()],
        ignore_conflicts=True,
    )
    rows = []
    for scope, key in attempt.counters():
        rows.append(LoginThrottle.objects.select_for_update().get(scope=scope, key=key))
    return rows


def attempt_begin(attempt: Attempt) -> None:
    """Reserve one try on every counter of `attempt`, or raise LockedOut (nothing reserved)."""
    now = timezone.now()
    window = timedelta(seconds=_policy()["WINDOW_SECONDS"])
    with transaction.atomic():
        rows = _locked_rows(attempt, now)
        for row in rows:
            if row.locked_until and row.locked_until > now:
                raise LockedOut(row.locked_until)
            if row.window_started_at <= now - window:
                row.failures, row.window_started_at, row.locked_until = 0, now, None
            if row.failures >= _limit(row.scope):
                # Tries still in flight hold the whole budget.
                raise LockedOut(max(row.window_started_at + window, now + timedelta(minutes=1)))
        for row in rows:
            row.failures += 1
            row.save(update_fields=["failures", "window_started_at", "locked_until"])


def attempt_failed(attempt: Attempt) -> list[str]:
    """Keep the reservation as a failure; lock counters that reached their limit.

    Must run inside the caller's transaction (with its audit entry). Returns the scopes
    that became locked by this failure.
    """
    now = timezone.now()
    lock = timedelta(seconds=_policy()["LOCK_SECONDS"])
    newly_locked = []
    for row in _locked_rows(attempt, now):
        if row.failures >= _limit(row.scope) and not (row.locked_until and row.locked_until > now):
            row.locked_until = now + lock
            row.save(update_fields=["locked_until"])
            newly_locked.append(row.scope)
    return newly_locked


def attempt_passed(attempt: Attempt) -> None:
    """The credentials were right: give the reserved place back."""
    for scope, key in attempt.counters():
        LoginThrottle.objects.filter(scope=scope, key=key, failures__gt=0).update(
            failures=F("failures") - 1
        )


def username_reset(username: str) -> None:
    """A completed sign-in clears the username's failures (never the address's)."""
    LoginThrottle.objects.filter(scope=Scope.USERNAME, key=username.strip().lower()).delete()


def throttle_unlock(*, scope: str, key: str) -> int:
    """Clear a counter (an administrator lifting a lockout)."""
    return LoginThrottle.objects.filter(scope=scope, key=key).delete()[0]
