from __future__ import annotations

import datetime as dt

import pytest

from audit import services
from audit.services import record_audit

T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


class _Clock:
    """Stands in for django.utils.timezone inside audit.services, so entries get set times."""

    def __init__(self) -> None:
        self.moment = T0

    def now(self) -> dt.datetime:
        return self.moment


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(services, "timezone", fake)
    return fake


@pytest.fixture
def entries_at(clock):
    """entries_at(workspace, [minutes after T0...]) → one entry per moment, in that order."""

    def make(workspace, minutes: list[float]):
        made = []
        for m in minutes:
            clock.moment = T0 + dt.timedelta(minutes=m)
            made.append(
                record_audit(
                    workspace=workspace,
                    actor="user:alice",
                    action="member.role_changed",
                    target=f"user:m{m}",
                    details={"minute": m},
                )
            )
        return made

    return make
