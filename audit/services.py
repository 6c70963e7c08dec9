"""Writing the audit log. Everyone records through `record_audit`, inside their own transaction."""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from audit.chain import GENESIS_HASH, chain_key, entry_hash
from audit.models import AuditChainHead, AuditEntry

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Callers must not pass secrets; these keys are blanked anyway, because the log is
# exported and can never be edited afterwards.
REDACTED_KEYS = frozenset(
    {
        "password",
        "passwd",
        "plaintext",
        "secret_value",
        "raw_key",
        "key",
        "api_key",
        "private_key",
        "client_secret",
        "totp_secret",
        "otp",
        "ciphertext",
    }
)
REDACTED = "[redacted]"


def record_audit(
    *,
    workspace: Workspace | None,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the workspace's chain (or the global one) and return it.

    Call it inside the transaction of the action it records: the entry commits or rolls
    back with it. Writers of one chain queue on its head row until the first commits.
    """
    if not ACTION_RE.match(action):
        raise ValueError(f"audit action must be a dotted lower-case verb, got {action!r}")
    if not actor:
        raise ValueError("audit actor must not be empty")
    clean = _normalise(_redact(details or {}))
    workspace_id = workspace.pk if workspace is not None else None
    with transaction.atomic():
        seq, prev_hash = _advance_head(chain_key(workspace_id))
        entry = AuditEntry(
            workspace_id=workspace_id,
            seq=seq,
            created_at=timezone.now(),
            actor=actor[:150],
            action=action,
            target=str(target)[:255],
            details=clean,
            prev_hash=prev_hash,
        )
        entry.hash = entry_hash(
            workspace_id=workspace_id,
            seq=seq,
            created_at=entry.created_at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            details=entry.details,
            prev_hash=prev_hash,
        )
        entry.save(force_insert=True)
        _set_head_hash(chain_key(workspace_id), entry.hash)
    return entry


def _advance_head(chain: int) -> tuple[int, str]:
    """Take the next seq of a chain, locking its head row until the transaction ends.

    The UPDATE comes first so the lock is taken before the previous hash is read: a
    read-then-write would let two writers chain onto the same predecessor.
    """
    table = connection.ops.quote_name(AuditChainHead._meta.db_table)
    sql = (
        f"UPDATE {table} SET last_seq = last_seq + 1 WHERE chain = %s RETURNING last_seq, last_hash"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [chain])
        row = cursor.fetchone()
        if row is None:
            # First entry of this chain: create the head (a racing creator is harmless).
            AuditChainHead.objects.bulk_create(
                [AuditChainHead(chain=chain, last_seq=0, last_hash=GENESIS_HASH)],
                ignore_conflicts=True,
            )
            cursor.execute(sql, [chain])
            row = cursor.fetchone()
    return int(row[0]), row[1]


def _set_head_hash(chain: int, new_hash: str) -> None:
    AuditChainHead.objects.filter(chain=chain).update(last_hash=new_hash)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): REDACTED if str(k).lower() in REDACTED_KEYS else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _normalise(details: dict[str, Any]) -> dict[str, Any]:
    # Hash exactly what the database will give back (dates as strings, tuples as lists).
    return json.loads(json.dumps(details, cls=DjangoJSONEncoder))
