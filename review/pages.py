"""Building the HTML of the diff viewer's fragments: a file's rows with threads spliced in.

The rows come from the diff pipeline's caches (review.diffs.fragments); threads are
rendered per request from the database, so a comment never invalidates a cached diff.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from html import escape  # not Django's, about 3x slower: 1,000 files make 5,000 calls
from urllib.parse import urlencode

from django.core.cache import cache
from django.template.loader import render_to_string
from django.urls import reverse

from review import selectors
from review.diffs import fragments, render
from review.diffs.fragments import DiffRef
from review.markdown import render_markdown
from review.models import ChangeSet, CommentPlacement, ReviewComment, Revision

# Like GitHub's 20,000-line limit: past it a file's diff is shown only when asked for, so
# opening a change set never waits on one enormous file.
COLLAPSE_LINES = 20_000


@dataclass(frozen=True)
class Scope:
    """What one page shows: a revision (or an interdiff since another) in one layout."""

    changeset: ChangeSet
    revision: Revision
    since: Revision | None
    view: str

    @property
    def is_interdiff(self) -> bool:
        return self.since is not None

    @property
    def can_comment_here(self) -> bool:
        return self.since is None and self.revision.number == self.latest_number

    @property
    def latest_number(self) -> int:
        return self.changeset.revisions.order_by("-number").values_list("number", flat=True)[0]

    def query(self, **extra) -> str:
        params = {"r": self.revision.number, "view": self.view}
        if self.since is not None:
            params["since"] = self.since.number
        params.update(extra)
        return urlencode(params)

    def ref(self) -> DiffRef:
        return self._ref

    @cached_property
    def _ref(self) -> DiffRef:
        return selectors.diff_ref(self.changeset, self.revision, self.since)

    def files(self) -> list[dict]:
        if self.since is None:
            return self.revision.files
        key = f"review:interdiff:{self.since.head_sha}:{self.revision.head_sha}"
        files = cache.get(key)
        if files is None:
            files = selectors.interdiff_files(self.ref(), self.revision, self.since)
            cache.set(key, files, 24 * 3600)
        return files

    def file_at(self, index: int) -> dict | None:
        """File `index` of what the page shows, without loading the whole list when the
        revision was read without it."""
        if index < 0:
            return None
        if self.since is None and "files" in self.revision.get_deferred_fields():
            return selectors.revision_file(self.revision, index)
        files = self.files()
        return files[index] if index < len(files) else None

    def columns(self) -> int:
        return 4 if self.view == render.SPLIT else 3


def etag_for(scope: Scope, index: int, chunk: int, version: int) -> str:
    ref = scope.ref()
    return (
        f'"{fragments.RENDER_VERSION}-{ref.base[:12]}-{ref.head[:12]}-{index}-{scope.view}'
        f'-{chunk}-{version}"'
    )


def file_body(scope: Scope, index: int, entry: dict, chunk: int, request) -> str:
    """The body of file `index`: a table of its rows (chunk 0) or the next rows."""
    fragment = fragments.fragment(
        scope.ref(), entry["path"], entry.get("old_path"), scope.view, chunk
    )
    threads = _threads_by_line(scope, entry["path"]) if not scope.is_interdiff else {}
    rows = _rows_with_threads(fragment.rows, threads, scope, request)
    if fragment.has_more:
        url = reverse("review:file", args=[scope.changeset.code])
        rows.append(
            f'<tr class="d-more" hx-get="{url}?{escape(scope.query(i=index, chunk=chunk + 1))}"'
            f' hx-trigger="revealed" hx-swap="outerHTML"><td colspan="{scope.columns()}">'
            f"Loading more lines…</td></tr>"
        )
    if chunk > 0:
        return "".join(rows)
    note = f'<p class="rv-note">{escape(fragment.note)}</p>' if fragment.note else ""
    hidden = _hidden_threads(scope, entry, threads, request)
    table = (
        f'<table class="rv-diff {scope.view}" data-i="{index}">{"".join(rows)}</table>'
        if rows
        else ""
    )
    if not rows and not note:
        note = '<p class="rv-note">No textual changes.</p>'
    return f'<div class="rv-body" id="body-{index}">{note}{hidden}{table}</div>'


def _threads_by_line(scope: Scope, path: str) -> dict[tuple[str, int], list[CommentPlacement]]:
    by_line: dict[tuple[str, int], list[CommentPlacement]] = defaultdict(list)
    for placement in selectors.placements_for(scope.revision, path):
        by_line[(placement.side, placement.last_line)].append(placement)
    return by_line


def _rows_with_threads(rows, threads, scope: Scope, request) -> list[str]:
    if not threads:
        return [html for html, _, _ in rows]
    out = []
    for html, old_no, new_no in rows:
        out.append(html)
        for key in (("old", old_no), ("new", new_no)):
            for placement in threads.pop(key, ()) if key[1] is not None else ():
                out.append(thread_row(placement.comment, scope, request, placement))
    return out


def _hidden_threads(scope: Scope, entry: dict, threads, request) -> str:
    """Threads on lines the diff does not show (outside its context) go above the table."""
    if not threads:
        return ""
    visible = fragments.visible_lines(scope.ref(), entry["path"], entry.get("old_path"))
    hidden = [
        placement
        for (side, line), placements in list(threads.items())
        if line not in visible[side]
        for placement in placements
    ]
    if not hidden:
        return ""
    rows = "".join(thread_row(p.comment, scope, request, p) for p in hidden)
    return (
        '<table class="rv-diff rv-hidden-threads"><caption>Comments on lines outside the '
        f"shown context</caption>{rows}</table>"
    )


def thread_row(
    comment: ReviewComment,
    scope: Scope,
    request,
    placement: CommentPlacement | None = None,
    *,
    error: str = "",
) -> str:
    return render_to_string(
        "review/_thread.html",
        {
            "thread": with_bodies(comment),
            "placement": placement,
            "scope": scope,
            "columns": scope.columns(),
            "error": error,
        },
        request=request,
    )


def with_bodies(comment: ReviewComment) -> ReviewComment:
    """Give the thread and its replies their rendered, sanitised Markdown (`body_html`);
    the template shows `shown_replies`, the very objects that carry it."""
    comment.shown_replies = list(comment.replies.all())
    for each in [comment, *comment.shown_replies]:
        each.body_html = render_markdown(each.body)
    return comment


# The file list and the per-file placeholders are built here rather than in template loops:
# a 1,000-file change set would spend most of its first response in the template engine.


def file_tree_html(files: list[dict], thread_counts: dict[str, int]) -> str:
    """The file tree: directories in path order, each file with its status and stats."""
    items = []
    current = None
    for index, entry in sorted(enumerate(files), key=lambda pair: pair[1]["path"]):
        directory, _, name = entry["path"].rpartition("/")
        if directory != current:
            current = directory
            if directory:
                items.append(f'<li class="dir">{escape(directory)}/</li>')
        threads = thread_counts.get(entry["path"], 0)
        badge = f' <span class="threads" title="threads">{threads}</span>' if threads else ""
        items.append(
            f'<li class="{"in-dir" if directory else ""}"><a href="#file-{index}" '
            f'title="{escape(entry["path"])}">{_status_mark(entry)} {escape(name)}</a>'
            f"{badge}{_stats(entry)}</li>"
        )
    return "".join(items) or '<li class="empty">No files differ.</li>'


def file_sections_html(scope: Scope, files: list[dict], first_body: str) -> str:
    """Every file's section; the first with its diff, the others loading when scrolled to."""
    url = reverse("review:file", args=[scope.changeset.code])
    query = escape(scope.query())
    sections = []
    for index, entry in enumerate(files):
        path = escape(entry["path"])
        renamed = (
            f' <small class="muted">from {escape(entry["old_path"])}</small>'
            if entry.get("old_path")
            else ""
        )
        if is_collapsed(entry):
            body = _collapsed_body(index, entry, f"{url}?{query}&amp;i={index}")
        elif index == 0:
            body = first_body
        else:
            rows = entry["additions"] + entry["deletions"]
            body = (
                f'<div class="rv-body rv-pending" id="body-{index}" data-rows="{rows}" '
                f'hx-get="{url}?{query}&amp;i={index}" hx-trigger="revealed" '
                f'hx-swap="outerHTML"><p class="rv-loading" aria-busy="true">Loading {path}…'
                "</p></div>"
            )
        sections.append(
            f'<section class="rv-file" id="file-{index}" data-i="{index}" data-path="{path}">'
            f'<header class="rv-file-head"><span class="st st-{_slug(entry)}">'
            f"{escape(entry['status'])}</span> <strong>{path}</strong>{renamed}"
            f"{_stats(entry, binary_word='binary')}</header>{body}</section>"
        )
    return "".join(sections)


def is_collapsed(entry: dict) -> bool:
    """A file this large waits behind "Load diff" instead of loading on sight."""
    return entry["additions"] + entry["deletions"] > COLLAPSE_LINES


def _collapsed_body(index: int, entry: dict, url: str) -> str:
    lines = entry["additions"] + entry["deletions"]
    return (
        f'<div class="rv-body rv-collapsed" id="body-{index}"><p class="rv-note">Large diff: '
        f"{lines:,} changed lines are not loaded by default.</p>"
        f'<button type="button" class="small outline rv-load" hx-get="{url}" '
        f'hx-target="#body-{index}" hx-swap="outerHTML">Load diff</button></div>'
    )


def _slug(entry: dict) -> str:
    return entry["status"].replace(" ", "-")


def _status_mark(entry: dict) -> str:
    status = escape(entry["status"])
    return f'<span class="st st-{_slug(entry)}" title="{status}">{status[:1].upper()}</span>'


def _stats(entry: dict, *, binary_word: str = "bin") -> str:
    if entry["binary"]:
        return f'<span class="stats">{binary_word}</span>'
    return (
        f'<span class="stats"><span class="add">+{entry["additions"]}</span> '
        f'<span class="del">&minus;{entry["deletions"]}</span></span>'
    )
