"""What a live page receives when events are committed: out-of-band fragments.

The same function serves the websocket (one event at a time) and the HTTP re-sync
(`?after=<id>`, every event a page missed): it renders, for one kind of page, the parts
that the events changed — timeline rows, state counts, board columns, a subtask's header,
runs and test runs — each as an element with a stable id and `hx-swap-oob`. Every element
it sends exists on that page, so htmx never looks for a missing target. A cursor element
closes each frame: the newest event id and the one before it, from which the page tells a
gap (a lost message) and re-syncs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from django.template.loader import render_to_string
from django.utils.html import format_html

from dashboard import selectors, views_context
from dashboard.selectors import BoardFilters, Rights
from orchestration.models import Event, EventKind

VIEWS = ("room", "board", "states", "feature", "subtask", "run", "tests")
RUN_EVENTS = frozenset(k for k in EventKind.values if k.startswith("run."))
TEST_EVENTS = frozenset({EventKind.TESTRUN_FINISHED, EventKind.TESTRUN_QUEUED})


@dataclass(frozen=True)
class LiveView:
    """Which page is listening: its kind, the object it shows, the board's filters."""

    kind: str = "room"
    code: str = ""
    filters: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, query: dict[str, str]) -> LiveView:
        kind = query.get("view", "room")
        if kind not in VIEWS:
            kind = "room"
        filters = tuple(
            (name, query[name])
            for name in ("project", "feature", "role", "risk")
            if query.get(name)
        )
        return cls(kind, query.get("code", "")[:36], filters)

    @classmethod
    def from_query_string(cls, raw: bytes | str) -> LiveView:
        text = raw.decode() if isinstance(raw, bytes) else raw
        return cls.parse({k: v[0] for k, v in parse_qs(text).items()})

    def query(self) -> str:
        params = {"view": self.kind}
        if self.code:
            params["code"] = self.code
        params.update(dict(self.filters))
        return urlencode(params)

    def board_filters(self) -> BoardFilters:
        return BoardFilters(**dict(self.filters))


def render_updates(
    workspace,
    view: LiveView,
    events: list[Event],
    rights: Rights,
    *,
    prev_id: int,
    more: bool = False,
) -> str:
    """The frame for `events` (oldest first) on a page of kind `view`, cursor last."""
    parts = [_PARTS[view.kind](workspace, view, events, rights)] if events else []
    last = events[-1].pk if events else prev_id
    parts.append(cursor(last, prev_id, more=more))
    return "".join(parts)


def render_event_frames(
    workspace, event_id: int, readers: list[tuple[LiveView, Rights]]
) -> dict[tuple[LiveView, Rights], str]:
    """The frame of one pushed event for each (page kind, rights) listening in a process.

    The event and the one before it are read once, whatever the number of readers.
    """
    event = selectors.pushed_event(workspace.pk, event_id)
    if event is None:  # not this workspace's event: nothing crosses workspaces
        return {}
    prev_id = event.prev_id or 0
    return {
        (view, rights): render_updates(workspace, view, [event], rights, prev_id=prev_id)
        for view, rights in readers
    }


def cursor(last: int, prev: int, *, more: bool = False) -> str:
    return format_html(
        '<i id="live-cursor" hx-swap-oob="true" hidden data-event="{}" data-prev="{}"{}></i>',
        last,
        prev,
        " data-more" if more else "",
    )


def _rows(events: list[Event], template_context: dict) -> str:
    """Timeline rows, newest first, to put on top of #timeline."""
    rows = render_to_string(
        "dashboard/_timeline_rows.html", {**template_context, "events": list(reversed(events))}
    )
    return f'<div hx-swap-oob="afterbegin:#timeline">{rows}</div>'


# Which parts of the control room an event can change (the timeline row always).
SUBTASK_EVENTS = frozenset(
    {EventKind.SUBTASK_CREATED, EventKind.SUBTASK_TRANSITION, EventKind.ESCALATED}
)
FEATURE_EVENTS = frozenset(
    {EventKind.FEATURE_CREATED, EventKind.FEATURE_TRANSITION, EventKind.PLAN_APPLIED}
)


def _room(workspace, view, events, rights) -> str:
    kinds = {e.kind for e in events}
    parts = []
    if kinds & SUBTASK_EVENTS:
        parts += ["counts", "waiting"]
    if kinds & RUN_EVENTS:
        parts.append("runs")
    if kinds & (FEATURE_EVENTS | SUBTASK_EVENTS):
        parts.append("features")
    context = views_context.room(workspace, rights, parts=parts)
    html = "".join(
        render_to_string(f"dashboard/room.html#{part}", {**context, "oob": True}) for part in parts
    )
    return _rows(events, context) + html


def _board(workspace, view, events, rights) -> str:
    states: set[str] = set()
    for event in events:
        if event.subtask_id is None:
            continue
        states.add(event.subtask.status)
        if event.kind == EventKind.SUBTASK_TRANSITION:
            states.update(filter(None, (event.data.get("from"), event.data.get("to"))))
    if not states:
        return ""
    context = views_context.board(workspace, view.board_filters(), rights, states=sorted(states))
    return render_to_string("dashboard/board.html#columns-oob", {**context, "oob": True})


def _states(workspace, view, events, rights) -> str:
    if not any(e.subtask_id for e in events):
        return ""
    context = views_context.states(workspace)
    return render_to_string("dashboard/states.html#live", {**context, "oob": True})


def _feature(workspace, view, events, rights) -> str:
    mine = [e for e in events if e.feature_id and str(e.feature.code) == view.code]
    if not mine:
        return ""
    feature = selectors.feature_in(workspace.pk, view.code)
    if feature is None:
        return ""
    context = views_context.feature(workspace, feature)
    return _rows(mine, context) + render_to_string(
        "dashboard/feature.html#live", {**context, "oob": True}
    )


def _subtask(workspace, view, events, rights) -> str:
    mine = [e for e in events if e.subtask_id and str(e.subtask.code) == view.code]
    if not mine:
        return ""
    subtask = selectors.subtask_in(workspace.pk, view.code)
    if subtask is None:
        return ""
    context = views_context.subtask(workspace, subtask, rights)
    return _rows(mine, context) + render_to_string(
        "dashboard/subtask.html#live", {**context, "oob": True}
    )


def _run(workspace, view, events, rights) -> str:
    if not any(e.run_id and str(e.run.code) == view.code for e in events):
        return ""
    run = selectors.run_in(workspace.pk, view.code)
    if run is None:
        return ""
    return render_to_string(
        "dashboard/run.html#live", {"workspace": workspace, "run": run, "oob": True}
    )


def _tests(workspace, view, events, rights) -> str:
    if not any(e.kind in TEST_EVENTS for e in events):
        return ""
    context = views_context.tests(workspace)
    return render_to_string("dashboard/tests.html#live", {**context, "oob": True})


_PARTS = {
    "room": _room,
    "board": _board,
    "states": _states,
    "feature": _feature,
    "subtask": _subtask,
    "run": _run,
    "tests": _tests,
}


def render_run_log(run_code: str, lines: str, start: int = 0) -> str:
    """Streamed lines of a running agent, appended to the run page's log.

    `data-start` is their offset in the run's output: live.js drops what the page already
    shows and re-reads the log when a batch was missed.
    """
    return format_html(
        '<div hx-swap-oob="beforeend:#run-log-{}"><span class="live-lines" data-start="{}">'
        "{}</span></div>",
        run_code,
        start,
        lines,
    )
