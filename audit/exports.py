"""Audit exports as JSON lines or CSV, streamed in batches so a long range never sits in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from audit.chain import canonical_time
from audit.models import AuditEntry

FORMATS = {"jsonl": "application/jsonl", "csv": "text/csv"}
COLUMNS = ["seq", "created_at", "actor", "action", "target", "details", "prev_hash", "hash"]
BATCH = 1000
# Spreadsheets run cells that start with these as formulas (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_row(entry: AuditEntry) -> dict:
    return {
        "seq": entry.seq,
        "created_at": canonical_time(entry.created_at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _batches(entries: QuerySet[AuditEntry]) -> Iterator[list[AuditEntry]]:
    # Keyset pages on seq (the query is ordered by it) instead of one long-lived cursor.
    last = 0
    while True:
        page = list(entries.filter(seq__gt=last)[:BATCH])
        if not page:
            return
        yield page
        last = page[-1].seq


def _safe_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def render_chunks(entries: QuerySet[AuditEntry], fmt: str) -> Iterator[str]:
    """The export as text chunks: a header first for CSV, then one chunk per batch."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        yield buffer.getvalue()
        for page in _batches(entries):
            buffer.seek(0)
            buffer.truncate()
            for entry in page:
                row = export_row(entry)
                row["details"] = json.dumps(row["details"], sort_keys=True)
                writer.writerow([_safe_cell(str(row[c])) for c in COLUMNS])
            yield buffer.getvalue()
        return
    for page in _batches(entries):
        yield "".join(
            json.dumps(export_row(e), sort_keys=True, ensure_ascii=False) + "\n" for e in page
        )


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    # The database is sync-only: each batch is read in the thread Django uses for sync code.
    step = sync_to_async(next, thread_sensitive=True)
    while (chunk := await step(chunks, None)) is not None:
        yield chunk


def export_response(
    entries: QuerySet[AuditEntry], fmt: str, filename: str, *, asynchronous: bool
) -> StreamingHttpResponse:
    """A streaming download; under ASGI the iterator must be async or Django buffers it all."""
    chunks = render_chunks(entries, fmt)
    body = _async_chunks(chunks) if asynchronous else chunks
    response = StreamingHttpResponse(body, content_type=f"{FORMATS[fmt]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
