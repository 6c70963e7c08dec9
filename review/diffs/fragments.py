"""The diff pipeline put together for one file of one diff, with its caches.

    git diff (one file) → parse → highlight both whole files → plan rows → render a chunk

Three caches, each keyed by what makes its content immutable:
- rendered chunks in the Django cache, by (base, head, path, view, chunk): a cached file
  fragment is a single cache read;
- highlighted files by blob id in the Django cache (shared by every diff that shows the
  same blob) and in a small per-process LRU, so context expansion re-uses them;
- the parsed diff of a file in a per-process LRU, so the next chunk of a huge file does
  not run git and parse again.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.core.cache import cache

import gitops
from review.diffs import highlight, render
from review.diffs.parse import SYMLINK_MODE, FileDiff, blob_text, diff_text, parse_file

# Bump when the rendered HTML changes shape, so stale cached fragments are never served.
RENDER_VERSION = 4
MAX_BLOB_BYTES = 8_000_000  # a larger file is shown from the diff's own text only
# A file's diff past this is not parsed at all (a generated dump, a data file): it would
# hold a worker and the browser for seconds and nobody reads it in a browser anyway.
MAX_DIFF_CHARS = 30_000_000
CACHE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class DiffRef:
    """Two commits compared directly (a revision: merge base → head; an interdiff)."""

    repo: Path
    base: str
    head: str


@dataclass(frozen=True)
class Prepared:
    file: FileDiff | None
    sources: render.Sources
    note: str


@dataclass(frozen=True)
class Fragment:
    rows: list[render.Row]
    has_more: bool
    note: str
    total_rows: int


class _Lru:
    """A small thread-safe LRU for objects too big to pickle on every request."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_prepared = _Lru(8)
_highlighted = _Lru(32)


def clear_local_caches() -> None:
    """Forget the per-process caches (tests and the benchmark's cold runs)."""
    _prepared.clear()
    _highlighted.clear()
    highlight.lexer_for.cache_clear()


def _key(*parts: object) -> str:
    digest = hashlib.sha1("\0".join(str(part) for part in parts).encode()).hexdigest()
    return f"review:{RENDER_VERSION}:{digest}"


def fragment(ref: DiffRef, path: str, old_path: str | None, view: str, chunk: int = 0) -> Fragment:
    """The rows of one chunk of one file's diff, from the cache when it has them."""
    key = _key("chunk", ref.base, ref.head, path, old_path, view, chunk)
    cached = cache.get(key)
    if cached is not None:
        return cached
    prepared = prepare(ref, path, old_path)
    if prepared.file is None:
        result = Fragment([], False, prepared.note, 0)
    else:
        specs = _specs(ref, prepared, view)
        rendered = render.render_chunk(specs, chunk, prepared.sources, view)
        result = Fragment(rendered.rows, rendered.has_more, prepared.note, len(specs))
    cache.set(key, result, CACHE_SECONDS)
    return result


def context(
    ref: DiffRef,
    path: str,
    old_path: str | None,
    view: str,
    *,
    old_start: int,
    new_start: int,
    count: int,
) -> list[render.Row]:
    prepared = prepare(ref, path, old_path)
    return render.context_rows(old_start, new_start, count, prepared.sources, view)


def prepare(ref: DiffRef, path: str, old_path: str | None) -> Prepared:
    key = (ref.repo, ref.base, ref.head, path, old_path)
    prepared = _prepared.get(key)
    if prepared is None:
        prepared = _prepare(ref, path, old_path)
        _prepared.put(key, prepared)
    return prepared


def _specs(ref: DiffRef, prepared: Prepared, view: str) -> list[tuple]:
    key = ("specs", ref.repo, ref.base, ref.head, prepared.file.path, view)
    specs = _prepared.get(key)
    if specs is None:
        with _bulk_build():
            specs = render.plan(prepared.file, view, prepared.sources)
        _prepared.put(key, specs)
    return specs


@contextmanager
def _bulk_build():
    """Pause the cyclic garbage collector while a huge file's lines and rows are built.

    Building 100,000 small tuples sets off collection after collection, each walking the
    growing heap (measured: a third to two thirds of the time); the tuples form no cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _prepare(ref: DiffRef, path: str, old_path: str | None) -> Prepared:
    paths = (old_path, path) if old_path and old_path != path else (path,)
    text = diff_text(ref.repo, ref.base, ref.head, paths)
    if len(text) > MAX_DIFF_CHARS:
        megabytes = len(text) / 1_000_000
        return Prepared(None, render.Sources(), f"diff too large to show ({megabytes:.0f} MB)")
    with _bulk_build():
        file = parse_file(text, path, old_path)
    if file is None:
        return Prepared(None, render.Sources(), "no changes in this file")
    notes = _notes(file)
    if file.binary:
        return Prepared(None, render.Sources(), "; ".join(["binary file", *notes]))
    if not file.hunks:
        return Prepared(file, render.Sources(), "; ".join(notes))
    if file.status in ("added", "deleted") and file.line_count > highlight.MAX_LINES:
        # The diff holds every line of the file and it is too long to colour: reading the
        # blob again would only cost time (two git calls, the escaping, a big cache entry).
        notes.append("not highlighted: too large to highlight")
        return Prepared(file, render.Sources(), "; ".join(notes))
    old = _highlighted_blob(ref.repo, file.old_blob, file.old_path)
    new = _highlighted_blob(ref.repo, file.new_blob, file.path)
    skipped = {h.reason for h in (old, new) if h is not None and not h.highlighted}
    skipped.discard("no lexer")
    notes += [f"not highlighted: {reason}" for reason in sorted(skipped)]
    sources = render.Sources(
        old=old.lines if old else None,
        new=new.lines if new else None,
        new_total=_line_total(new),
    )
    return Prepared(file, sources, "; ".join(notes))


def _line_total(new: highlight.Highlighted | None) -> int | None:
    if new is None:
        return None
    # A file ending in a newline splits into one empty string more than it has lines.
    lines = new.lines
    return len(lines) - 1 if lines and lines[-1] == "" else len(lines)


def _notes(file: FileDiff) -> list[str]:
    notes = []
    if file.status == "renamed":
        notes.append(f"renamed from {file.old_path}")
    if file.old_mode and file.new_mode and file.old_mode != file.new_mode:
        notes.append(f"mode {file.old_mode} → {file.new_mode}")
    if SYMLINK_MODE in (file.old_mode, file.new_mode):
        notes.append("symbolic link")
    if file.status in ("renamed", "mode") and not file.hunks and not file.binary:
        notes.append("content unchanged")
    return notes


def _highlighted_blob(repo: Path, blob: str | None, path: str) -> highlight.Highlighted | None:
    if not blob:
        return None
    lexer = highlight.lexer_for(path)
    key = _key("blob", blob, lexer.name if lexer else "plain")
    found = _highlighted.get(key) or cache.get(key)
    if found is None:
        found = _load_blob(repo, blob, path)
        if found is not None:
            cache.set(key, found, CACHE_SECONDS)
    if found is not None:
        _highlighted.put(key, found)
    return found


def _load_blob(repo: Path, blob: str, path: str) -> highlight.Highlighted | None:
    size = int(gitops.run_git(repo, "cat-file", "-s", blob).stdout.strip() or 0)
    if size > MAX_BLOB_BYTES:
        return None
    return highlight.highlight_file(blob_text(repo, blob), path)


def visible_lines(ref: DiffRef, path: str, old_path: str | None) -> dict[str, set]:
    """The old and new line numbers the file's diff shows (to place threads above it)."""
    prepared = prepare(ref, path, old_path)
    shown: dict[str, set] = {"old": set(), "new": set()}
    if prepared.file is None:
        return shown
    for hunk in prepared.file.hunks:
        for line in hunk.lines:
            if line.old_no is not None:
                shown["old"].add(line.old_no)
            if line.new_no is not None:
                shown["new"].add(line.new_no)
    return shown
