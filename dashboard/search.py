"""Activity search: everything that happened, found by words and narrowed by filters.

On PostgreSQL the words are matched against `Event.search_vector`, a tsvector stored when
the event was written (services.events) and indexed with GIN: no row is parsed at query
time and matches are not ranked — the newest come first, a page at a time, by keyset (no
OFFSET, no COUNT over every match). Elsewhere (the embedded SQLite default) the same
filters scan with LIKE.

Runs are found through the event that finished them, whose document includes the run's
output and error. Review comments will be found the same way: the review app records a
`comment.*` event whose data carries the comment's text (services.events indexes the
strings of `data`), and search needs no change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.contrib.postgres.search import SearchQuery
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from dashboard.selectors import event_rows, last_event_id
from orchestration.models import AgentRun, Event, EventKind

PAGE_SIZE = 25
# How many of the newest event ids are walked in order before the GIN index is asked.
RECENT_WINDOW = 50_000
SNIPPET_LINES = 3


@dataclass
class ActivityQuery:
    text: str = ""
    project: str = ""
    agent: str = ""
    kind: str = ""
    state: str = ""
    since: date | None = None
    until: date | None = None
    before: int | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, query) -> ActivityQuery:
        found = cls(
            text=query.get("q", "").strip()[:200],
            project=query.get("project", "").strip(),
            agent=query.get("agent", "").strip(),
            kind=query.get("kind", "").strip(),
            state=query.get("state", "").strip(),
        )
        found.since = found._date(query.get("since", ""), "since")
        found.until = found._date(query.get("until", ""), "until")
        before = query.get("before", "")
        found.before = int(before) if before.isdigit() else None
        if found.since and found.until and found.since > found.until:
            found.errors.append("“From” is after “to”: swap the dates.")
        return found

    def _date(self, raw: str, name: str) -> date | None:
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.errors.append(f"“{raw}” is not a date (use YYYY-MM-DD) for {name}.")
            return None

    @property
    def is_empty(self) -> bool:
        return not any(
            (self.text, self.project, self.agent, self.kind, self.state, self.since, self.until)
        )

    @property
    def terms(self) -> list[str]:
        words = re.findall(r"[\w.:/-]+", self.text.lower())
        return [w for w in words if w not in {"or", "and"} and len(w) > 1]


@dataclass
class Hit:
    event: Event
    snippet: SafeString
    message: SafeString


@dataclass
class ResultPage:
    hits: list[Hit]
    older: int | None  # `before` for the next page, None on the last one


def matching(workspace_id: int, query: ActivityQuery) -> QuerySet[Event]:
    rows = event_rows(workspace_id)
    if query.text:
        if connection.vendor == "postgresql":
            rows = rows.filter(
                search_vector=SearchQuery(query.text, config="english", search_type="websearch")
            )
        else:
            for term in query.terms or [query.text]:
                rows = rows.filter(
                    Q(message__icontains=term)
                    | Q(kind__icontains=term)
                    | Q(run__output__icontains=term)
                    | Q(run__error__icontains=term)
                )
    if query.project:
        rows = rows.filter(project__code=query.project)
    if query.agent:
        rows = rows.filter(run__role=query.agent)
    if query.kind:
        rows = rows.filter(kind__startswith=query.kind)
    if query.state:
        rows = rows.filter(subtask__status=query.state)
    if query.since:
        rows = rows.filter(created_at__gte=_day_start(query.since))
    if query.until:
        rows = rows.filter(created_at__lt=_day_start(query.until) + timezone.timedelta(days=1))
    if query.before:
        rows = rows.filter(id__lt=query.before)
    return rows.order_by("-id")


def search(workspace_id: int, query: ActivityQuery, *, page_size: int = PAGE_SIZE) -> ResultPage:
    if query.is_empty or query.errors:
        return ResultPage([], None)
    events = _newest_first(matching(workspace_id, query), workspace_id, query, page_size + 1)
    older = events[page_size - 1].pk if len(events) > page_size else None
    events = events[:page_size]
    logs = _run_logs(
        [e for e in events if e.kind in (EventKind.RUN_SUCCEEDED, EventKind.RUN_FAILED)]
    )
    terms = query.terms
    hits = [
        Hit(e, snippet(logs.get(e.run_id, ""), terms), highlight(e.message, terms)) for e in events
    ]
    return ResultPage(hits, older)


def _newest_first(rows: QuerySet[Event], workspace_id: int, query, limit: int) -> list[Event]:
    """The newest `limit` matches, without reading every match.

    PostgreSQL's estimate for several words together is often far too low, and it then
    fetches every matching row through the GIN index to sort them (hundreds of ms for a
    common line of a log). Walking the newest events backwards by id and testing each
    stored vector stops at the page's last row instead: we do that over a window of the
    newest events first, and use the planner's own choice (GIN, right for rare words)
    only for what the window did not fill.
    """
    if connection.vendor != "postgresql":
        return list(rows[:limit])
    top = query.before or last_event_id(workspace_id) + 1
    floor = top - RECENT_WINDOW
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        found = list(rows.filter(id__gte=floor)[:limit])
    if len(found) < limit:
        found += list(rows.filter(id__lt=floor)[: limit - len(found)])
    return found


def _run_logs(events: list[Event]) -> dict[int, str]:
    ids = {e.run_id for e in events if e.run_id}
    if not ids:
        return {}
    rows = AgentRun.objects.filter(id__in=ids).values_list("id", "output", "error")
    return {pk: f"{output}\n{error}" for pk, output, error in rows}


def _pattern(terms: list[str]) -> re.Pattern | None:
    if not terms:
        return None
    # Stems match longer words (search "fail" finds "failed"), as the tsquery does.
    return re.compile(
        "|".join(re.escape(t[:-1] if len(t) > 4 else t) + r"\w*" for t in terms), re.I
    )


def highlight(text: str, terms: list[str]) -> SafeString:
    pattern = _pattern(terms)
    if pattern is None:
        return escape(text)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f"<mark>{escape(match.group(0))}</mark>")
        last = match.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))


def snippet(log: str, terms: list[str]) -> SafeString:
    """The log lines that contain a searched word, highlighted (a few, each shortened)."""
    pattern = _pattern(terms)
    if not log or pattern is None:
        return mark_safe("")
    lines = [line for line in log.splitlines() if pattern.search(line)][:SNIPPET_LINES]
    return mark_safe("\n".join(highlight(line[:300], terms) for line in lines))


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())
