"""Template contexts of the live parts of each page, shared by the views and dashboard.live.

A page and the fragment pushed to it come from the same function, so what arrives over
the websocket is exactly what a reload would show.
"""

from __future__ import annotations

from django.urls import reverse

from dashboard import graphs, selectors
from dashboard.selectors import BoardFilters, Rights
from orchestration.models import FeatureRequest, Subtask

ROOM_PARTS = ("counts", "runs", "waiting", "features")


def room(workspace, rights: Rights, *, parts=ROOM_PARTS) -> dict:
    """The control room's live parts; only `parts` are read (a push needs only some)."""
    readers = {
        "counts": lambda: selectors.status_counts(workspace.pk),
        "runs": lambda: selectors.runs_in_flight(workspace.pk),
        "waiting": lambda: selectors.waiting_for_humans(workspace.pk),
        "features": lambda: selectors.active_features(workspace.pk),
    }
    context = {"workspace": workspace, "rights": rights, "now": selectors.now()}
    context.update({part: readers[part]() for part in parts})
    return context


def board(workspace, filters: BoardFilters, rights: Rights, *, states=None) -> dict:
    columns = selectors.board_columns(workspace.pk, filters, states=states)
    now = selectors.now()
    for column in columns:
        for card in column.cards:
            card.transitions = selectors.transitions_for(card, rights)
            card.eta = selectors.eta(card, now)
    return {
        "workspace": workspace,
        "rights": rights,
        "columns": columns,
        "filters": filters,
        "query": _filter_query(filters),
        "now": now,
    }


def _filter_query(filters: BoardFilters) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in vars(filters).items() if v})


def states(workspace, *, limit: int = 25) -> dict:
    counts = selectors.status_counts(workspace.pk)
    recent = selectors.recently_changed_subtasks(workspace.pk, limit=limit)
    history = selectors.transition_history([s.pk for s in recent])
    now = selectors.now()
    rows = []
    for subtask in recent:
        segments = graphs.state_segments(subtask.created_at, history.get(subtask.pk, []), now)
        rows.append(
            {
                "subtask": subtask,
                "bar": graphs.stacked_bar_svg(segments),
                "totals": sorted(graphs.state_totals(segments).items(), key=lambda kv: -kv[1]),
            }
        )
    board_url = reverse("dashboard:board", args=[workspace.code])
    return {
        "workspace": workspace,
        "counts": counts,
        "diagram": graphs.lifecycle_svg(counts, link=board_url),
        "history": rows,
    }


def feature(workspace, feature: FeatureRequest) -> dict:
    subtasks, edges = selectors.feature_subtasks(feature)
    history = selectors.transition_history([s.pk for s in subtasks])
    durations = selectors.completed_durations(feature.project_id)
    now = selectors.now()
    rows = graphs.gantt_rows(subtasks, edges, history, durations, now)
    seconds = {}
    for row in rows:
        start = row.actual[0] if row.actual else row.predicted[0] if row.predicted else now
        end = row.predicted[1] if row.predicted else row.actual[1] if row.actual else now
        seconds[row.subtask.pk] = (end - start).total_seconds()
    critical = graphs.critical_path([s.pk for s in subtasks], edges, seconds)

    def link(subtask: Subtask) -> str:
        return reverse("dashboard:subtask", args=[workspace.code, subtask.code])

    finish = max((r.predicted[1] for r in rows if r.predicted), default=None)
    by_id = {s.pk: s for s in subtasks}
    return {
        "workspace": workspace,
        "feature": feature,
        "subtasks": subtasks,
        "graph": graphs.dependency_svg(subtasks, edges, critical, link) if subtasks else "",
        "gantt": graphs.gantt_svg(rows, now, link),
        "critical": [by_id[pk] for pk in critical],
        "predicted_finish": finish,
        "done": sum(1 for s in subtasks if s.status == "completed"),
    }


def subtask(workspace, subtask: Subtask, rights: Rights, *, error: str = "") -> dict:
    waits_on, needed_by = selectors.subtask_dependencies(subtask)
    return {
        "workspace": workspace,
        "subtask": subtask,
        "rights": rights,
        "transitions": selectors.transitions_for(subtask, rights),
        "runs": selectors.subtask_runs(subtask),
        "test_runs": selectors.subtask_test_runs(subtask),
        "waits_on": waits_on,
        "needed_by": needed_by,
        "error": error,
    }


def tests(workspace) -> dict:
    return {
        "workspace": workspace,
        "latest": selectors.latest_test_runs(workspace.pk),
        "recent": selectors.recent_test_runs(workspace.pk),
    }
