"""Server-side pictures: the lifecycle diagram, dependency graphs, Gantt bars, state history.

Plain functions from rows to numbers (layout, critical path, predicted dates) and from
numbers to SVG. SVG elements carry `st-<state>` classes so the stylesheet colours states
the same way everywhere, in light and dark mode.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from orchestration.models import SubtaskStatus
from orchestration.models.subtasks import SUBTASK_TRANSITIONS

S = SubtaskStatus

# --- the lifecycle ----------------------------------------------------------------------

BOX_W, BOX_H = 132, 50
LIFECYCLE_BOXES = {
    S.PENDING: (10, 30),
    S.IN_PROGRESS: (215, 30),
    S.TESTING: (420, 30),
    S.READY_FOR_REVIEW: (625, 30),
    S.COMPLETED: (830, 30),
    S.BLOCKED: (215, 190),
    S.FAILED: (420, 190),
    S.RETRYING: (625, 190),
}


def _clip(x1, y1, x2, y2) -> tuple[float, float]:
    """Where the segment from the centre (x1, y1) towards (x2, y2) leaves the box."""
    dx, dy = x2 - x1, y2 - y1
    scale = min(
        (BOX_W / 2) / abs(dx) if dx else float("inf"),
        (BOX_H / 2) / abs(dy) if dy else float("inf"),
    )
    return x1 + dx * scale, y1 + dy * scale


def _centre(state) -> tuple[float, float]:
    x, y = LIFECYCLE_BOXES[state]
    return x + BOX_W / 2, y + BOX_H / 2


def lifecycle_svg(counts: dict[str, int], *, link: str = "") -> SafeString:
    """The lifecycle as a diagram with a live count in each state; boxes link to the board."""
    edges = []
    pairs = {(src, dst) for sources, dst in SUBTASK_TRANSITIONS.values() for src in sources}
    for name, (sources, target) in SUBTASK_TRANSITIONS.items():
        for source in sources:
            (x1, y1), (x2, y2) = _centre(source), _centre(target)
            # Two-way pairs are drawn side by side instead of on top of each other.
            shift = 7 if (target, source) in pairs else 0
            nx, ny = -(y2 - y1), (x2 - x1)
            norm = (nx * nx + ny * ny) ** 0.5 or 1
            nx, ny = nx / norm, ny / norm
            x1, y1 = x1 + nx * shift, y1 + ny * shift
            x2, y2 = x2 + nx * shift, y2 + ny * shift
            sx, sy = _clip(x1, y1, x2, y2)
            ex, ey = _clip(x2, y2, x1, y1)
            if (source, target) == (S.RETRYING, S.BLOCKED):
                # Under the second row, so it does not cross the failed box.
                (bx, by), (tx, _) = LIFECYCLE_BOXES[source], LIFECYCLE_BOXES[target]
                low = by + BOX_H
                path = (
                    f"M{bx + BOX_W / 2:.0f},{low} C{bx + BOX_W / 2:.0f},{low + 45} "
                    f"{tx + BOX_W / 2:.0f},{low + 45} {tx + BOX_W / 2:.0f},{low + 2}"
                )
                lx, ly = (bx + tx + BOX_W) / 2, low + 44
            elif name == "request_changes":
                # An arc above the main row, from review back to in progress.
                path = (
                    f"M{sx:.0f},{sy - 20:.0f} C{sx - 40:.0f},-10 "
                    f"{ex + 40:.0f},-10 {ex:.0f},{ey - 20:.0f}"
                )
                lx, ly = (sx + ex) / 2, 8
            else:
                path = f"M{sx:.0f},{sy:.0f} L{ex:.0f},{ey:.0f}"
                # The label sits beside its own arrow, on the side it was shifted to.
                side = 1 if shift else -1
                lx, ly = (sx + ex) / 2 + nx * 10 * side, (sy + ey) / 2 + ny * 10 * side + 3
            edges.append(
                format_html(
                    '<path d="{}" class="edge" marker-end="url(#arrow)"><title>{}</title></path>'
                    '<text x="{}" y="{}" class="edge-label" text-anchor="middle">{}</text>',
                    path,
                    name,
                    f"{lx:.0f}",
                    f"{ly:.0f}",
                    name.replace("_", " "),
                )
            )
    boxes = []
    for state, (x, y) in LIFECYCLE_BOXES.items():
        href = f"{link}#col-{state.value}" if link else ""
        box = format_html(
            '<g class="state st-{}" id="lifecycle-{}">'
            '<rect x="{}" y="{}" width="{}" height="{}" rx="8"/>'
            '<text x="{}" y="{}" class="state-name">{}</text>'
            '<text x="{}" y="{}" class="state-count">{}</text></g>',
            state.value,
            state.value,
            x,
            y,
            BOX_W,
            BOX_H,
            x + 10,
            y + 19,
            state.label,
            x + 10,
            y + 41,
            counts.get(state.value, 0),
        )
        boxes.append(format_html('<a href="{}">{}</a>', href, box) if href else box)
    return mark_safe(
        '<svg class="lifecycle" viewBox="0 -20 980 320" role="img" '
        'aria-label="Subtask lifecycle with the number of subtasks in each state">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>" + "".join(edges) + "".join(boxes) + "</svg>"
    )


# --- state history ----------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    state: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


def state_segments(created_at: datetime, transitions, now: datetime) -> list[Segment]:
    """Time spent in each successive state, from creation to now (or the last change)."""
    segments, state, since = [], S.PENDING.value, created_at
    for when, _before, after in transitions:
        segments.append(Segment(state, since, when))
        state, since = after, when
    end = since if state == S.COMPLETED else now
    segments.append(Segment(state, since, end))
    return segments


def state_totals(segments: list[Segment]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for segment in segments:
        totals[segment.state] += segment.seconds
    return dict(totals)


def stacked_bar_svg(segments: list[Segment], *, width: int = 420) -> SafeString:
    total = sum(s.seconds for s in segments) or 1.0
    x, parts = 0.0, []
    for segment in segments:
        w = width * segment.seconds / total
        parts.append(
            format_html(
                '<rect x="{}" y="0" width="{}" height="14" class="st-{}">'
                "<title>{}: {}</title></rect>",
                f"{x:.1f}",
                f"{max(w, 0.5):.1f}",
                segment.state,
                segment.state.replace("_", " "),
                duration_label(segment.seconds),
            )
        )
        x += w
    return mark_safe(
        f'<svg class="stacked" viewBox="0 0 {width} 14" preserveAspectRatio="none" '
        f'role="img" aria-label="time in each state">{"".join(parts)}</svg>'
    )


def duration_label(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


# --- dependency graph and critical path -------------------------------------------------


def layers(node_ids: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """Each node's depth: the longest chain of dependencies before it (a DAG)."""
    before = defaultdict(list)
    for dep, node in edges:
        before[node].append(dep)
    depth: dict[int, int] = {}

    def visit(node: int, seen: frozenset) -> int:
        if node in depth:
            return depth[node]
        if node in seen:  # a cycle would be a bug elsewhere; draw it rather than hang
            return 0
        value = 1 + max((visit(d, seen | {node}) for d in before[node]), default=-1)
        depth[node] = value
        return value

    for node in node_ids:
        visit(node, frozenset())
    return depth


def critical_path(
    node_ids: list[int], edges: list[tuple[int, int]], seconds: dict[int, float]
) -> list[int]:
    """The chain of dependencies with the largest total duration: it sets the finish date."""
    before = defaultdict(list)
    for dep, node in edges:
        before[node].append(dep)
    order = sorted(node_ids, key=layers(node_ids, edges).get)
    best: dict[int, tuple[float, int | None]] = {}
    for node in order:
        prior = max(((best[d][0], d) for d in before[node] if d in best), default=(0.0, None))
        best[node] = (prior[0] + seconds.get(node, 0.0), prior[1])
    if not best:
        return []
    node: int | None = max(best, key=lambda n: best[n][0])
    path = []
    while node is not None:
        path.append(node)
        node = best[node][1]
    return list(reversed(path))


NODE_W, NODE_H, GAP_X, GAP_Y = 170, 46, 60, 18


def dependency_svg(subtasks, edges: list[tuple[int, int]], critical: list[int], link) -> SafeString:
    """Subtasks left to right by depth, arrows from a dependency to what waits on it."""
    ids = [s.pk for s in subtasks]
    depth = layers(ids, edges)
    rows: dict[int, int] = defaultdict(int)
    pos = {}
    for subtask in subtasks:
        d = depth.get(subtask.pk, 0)
        pos[subtask.pk] = (10 + d * (NODE_W + GAP_X), 10 + rows[d] * (NODE_H + GAP_Y))
        rows[d] += 1
    on_path = set(critical)
    path_edges = set(itertools.pairwise(critical))
    parts = []
    for dep, node in edges:
        if dep not in pos or node not in pos:
            continue
        (x1, y1), (x2, y2) = pos[dep], pos[node]
        cls = "edge critical" if (dep, node) in path_edges else "edge"
        parts.append(
            format_html(
                '<path d="M{},{} C{},{} {},{} {},{}" class="{}" marker-end="url(#dep-arrow)"/>',
                x1 + NODE_W,
                y1 + NODE_H // 2,
                x1 + NODE_W + GAP_X // 2,
                y1 + NODE_H // 2,
                x2 - GAP_X // 2,
                y2 + NODE_H // 2,
                x2 - 2,
                y2 + NODE_H // 2,
                cls,
            )
        )
    for subtask in subtasks:
        x, y = pos[subtask.pk]
        cls = "node critical" if subtask.pk in on_path else "node"
        parts.append(
            format_html(
                '<a href="{}"><g class="{} st-{}" id="node-{}">'
                '<rect x="{}" y="{}" width="{}" height="{}" rx="6"/>'
                '<text x="{}" y="{}" class="node-key">{}</text>'
                '<text x="{}" y="{}" class="node-state">{}</text><title>{}</title></g></a>',
                link(subtask),
                cls,
                subtask.status,
                subtask.code,
                x,
                y,
                NODE_W,
                NODE_H,
                x + 8,
                y + 18,
                _short(f"{subtask.key} · {subtask.title}", 26),
                x + 8,
                y + 36,
                subtask.get_status_display(),
                subtask.title,
            )
        )
    width = 20 + (max(depth.values(), default=0) + 1) * (NODE_W + GAP_X)
    height = 20 + max(rows.values(), default=1) * (NODE_H + GAP_Y)
    return mark_safe(
        f'<svg class="dag" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        'aria-label="Dependency graph; the critical path is highlighted">'
        '<defs><marker id="dep-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        + "".join(parts)
        + "</svg>"
    )


def _short(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- Gantt ------------------------------------------------------------------------------


@dataclass
class GanttRow:
    subtask: object
    actual: tuple[datetime, datetime] | None
    predicted: tuple[datetime, datetime] | None


def typical_seconds(durations: list[float], subtask) -> float:
    """How long a subtask is expected to take: the project's median, else its estimate."""
    if durations:
        return statistics.median(durations)
    if subtask.estimate_hours:
        return float(subtask.estimate_hours) * 3600
    return 1800.0


def gantt_rows(subtasks, edges, history, durations: list[float], now: datetime) -> list[GanttRow]:
    """Actual bars from the transition history; predicted ones for the unfinished work,
    each starting when its dependencies are predicted to finish."""
    before = defaultdict(list)
    for dep, node in edges:
        before[node].append(dep)
    finish: dict[int, datetime] = {}
    rows: dict[int, GanttRow] = {}
    depth = layers([s.pk for s in subtasks], edges)
    order = sorted(subtasks, key=lambda s: depth.get(s.pk, 0))
    for subtask in order:
        changes = history.get(subtask.pk, [])
        started = next((when for when, _b, after in changes if after == S.IN_PROGRESS), None)
        done = subtask.status == S.COMPLETED
        actual = (started, subtask.status_changed_at if done else now) if started else None
        predicted = None
        if not done:
            expected = timedelta(seconds=typical_seconds(durations, subtask))
            deps_done = max((finish.get(d, now) for d in before[subtask.pk]), default=now)
            start = started or max(deps_done, now)
            end = max(start + expected, now + timedelta(seconds=60))
            predicted = (start, end)
        finish[subtask.pk] = predicted[1] if predicted else actual[1] if actual else now
        rows[subtask.pk] = GanttRow(subtask, actual, predicted)
    return [rows[s.pk] for s in subtasks]


def gantt_svg(rows: list[GanttRow], now: datetime, link, *, width: int = 760) -> SafeString:
    spans = [t for row in rows for pair in (row.actual, row.predicted) if pair for t in pair]
    if not spans:
        return mark_safe("")
    start, end = min(spans), max(max(spans), now)
    total = max((end - start).total_seconds(), 60.0)
    label_w, bar_w, row_h = 180, width - 190, 24

    def x(when: datetime) -> float:
        return label_w + bar_w * (when - start).total_seconds() / total

    parts = []
    for i, row in enumerate(rows):
        y = 10 + i * row_h
        parts.append(
            format_html(
                '<a href="{}"><text x="4" y="{}" class="gantt-label">{}</text></a>',
                link(row.subtask),
                y + 14,
                _short(f"{row.subtask.key} {row.subtask.title}", 26),
            )
        )
        if row.actual:
            a, b = row.actual
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="14" class="actual st-{}">'
                    "<title>{}</title></rect>",
                    f"{x(a):.1f}",
                    y + 2,
                    f"{max(x(b) - x(a), 2):.1f}",
                    row.subtask.status,
                    f"actual: {duration_label((b - a).total_seconds())}",
                )
            )
        if row.predicted:
            a, b = row.predicted
            a = max(a, row.actual[1]) if row.actual else a
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="14" class="predicted">'
                    "<title>{}</title></rect>",
                    f"{x(a):.1f}",
                    y + 2,
                    f"{max(x(b) - x(a), 2):.1f}",
                    f"predicted finish {b:%H:%M} UTC",
                )
            )
    height = 20 + len(rows) * row_h
    parts.append(
        format_html(
            '<line x1="{0}" x2="{0}" y1="0" y2="{1}" class="now"/>'
            '<text x="{0}" y="{2}" class="now-label">now</text>',
            f"{x(now):.1f}",
            height - 8,
            height,
        )
    )
    return mark_safe(
        f'<svg class="gantt" viewBox="0 0 {width} {height + 6}" role="img" '
        'aria-label="Timeline: actual bars from the events, predicted bars hatched">'
        + "".join(parts)
        + "</svg>"
    )
