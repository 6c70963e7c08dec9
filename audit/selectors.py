"""Reading the audit log: time ranges from user input, and the entries in a range."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime

from accounts.models import Workspace
from audit.models import AuditEntry

# A '+' in a query string decodes to a space: "10:00:00 01:00" was meant as "+01:00".
_SPACED_OFFSET = re.compile(r"^(.*\d) (\d{2}(:?\d{2})?)$")


class RangeError(ValueError):
    """A time range the caller got wrong: which parameter, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TimeRange:
    """Half-open [start, end): an entry at exactly `end` belongs to the next range."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None


def parse_moment(field: str, raw: str | None) -> dt.datetime | None:
    """An ISO 8601 date or date-time; a date means its midnight, no offset means UTC."""
    raw = (raw or "").strip()
    if not raw:
        return None
    raw = _SPACED_OFFSET.sub(r"\1+\2", raw)
    try:
        moment = parse_datetime(raw)
        if moment is None and (day := parse_date(raw)) is not None:
            moment = dt.datetime.combine(day, dt.time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise RangeError(
            field,
            f"{field} must be an ISO 8601 date or date-time such as 2026-11-25 or "
            f"2026-11-25T09:30:00Z, got {raw[:40]!r}",
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    # In UTC: PostgreSQL refuses offsets past ±15:59 that Python accepts (found by fuzzing).
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise RangeError(field, f"{field} is out of range, got {raw[:40]!r}") from None


def parse_range(raw_from: str | None, raw_to: str | None) -> TimeRange:
    start, end = parse_moment("from", raw_from), parse_moment("to", raw_to)
    if start and end and end <= start:
        raise RangeError("to", "to must be later than from")
    return TimeRange(start, end)


def entries_in_range(
    *, workspace: Workspace, time_range: TimeRange, action: str = "", actor: str = ""
) -> QuerySet[AuditEntry]:
    """The workspace's entries in the range, oldest first (chain order)."""
    entries = AuditEntry.objects.filter(workspace=workspace)
    if time_range.start:
        entries = entries.filter(created_at__gte=time_range.start)
    if time_range.end:
        entries = entries.filter(created_at__lt=time_range.end)
    if action:
        entries = entries.filter(action__startswith=action)
    if actor:
        entries = entries.filter(actor=actor)
    return entries.order_by("seq")
