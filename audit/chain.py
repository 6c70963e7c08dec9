"""The canonical form of an audit entry and its hash: one definition for writers and checkers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64
GLOBAL_CHAIN = 0


def chain_key(workspace_id: int | None) -> int:
    return GLOBAL_CHAIN if workspace_id is None else workspace_id


def canonical_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    workspace_id: int | None,
    seq: int,
    created_at: dt.datetime,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 over sorted-key JSON of every stored field, the previous hash included."""
    payload = {
        "workspace": workspace_id,
        "seq": seq,
        "created_at": canonical_time(created_at),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_of(entry) -> str:
    """The hash an AuditEntry row should carry, recomputed from its stored fields."""
    return entry_hash(
        workspace_id=entry.workspace_id,
        seq=entry.seq,
        created_at=entry.created_at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        details=entry.details,
        prev_hash=entry.prev_hash,
    )
