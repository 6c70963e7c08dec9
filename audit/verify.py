"""Checking the audit chains: the first entry where a chain stops being what was written."""

from __future__ import annotations

from dataclasses import dataclass

from audit.chain import GENESIS_HASH, chain_key, hash_of
from audit.models import AuditChainHead, AuditEntry

BATCH = 2000


@dataclass(frozen=True)
class ChainProblem:
    """Where a chain breaks: the entry (or the missing seq) and what is wrong there."""

    workspace_id: int | None
    seq: int
    entry_id: int | None
    reason: str

    def __str__(self) -> str:
        chain = "global" if self.workspace_id is None else f"workspace {self.workspace_id}"
        where = f"entry id={self.entry_id} seq={self.seq}" if self.entry_id else f"seq={self.seq}"
        return f"{chain}: {where}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    workspace_id: int | None
    entries: int
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def chains_in_log() -> list[int | None]:
    """Every chain that has entries or a head row (a head without entries means deletion)."""
    ids = set(AuditEntry.objects.values_list("workspace_id", flat=True).distinct())
    for chain in AuditChainHead.objects.values_list("chain", flat=True):
        ids.add(None if chain == 0 else chain)
    return sorted(ids, key=lambda w: -1 if w is None else w)


def verify_chain(workspace_id: int | None) -> ChainReport:
    """Walk one chain in seq order; report the first entry that is modified, missing or extra."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for entry in _entries(workspace_id):
        count += 1
        problem = _check(entry, expected_seq, prev_hash)
        if problem:
            return ChainReport(workspace_id, count, problem)
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    return ChainReport(workspace_id, count, _check_head(workspace_id, expected_seq - 1, prev_hash))


def _entries(workspace_id: int | None):
    # workspace_id=None filters IS NULL: the global chain.
    base = AuditEntry.objects.filter(workspace_id=workspace_id).order_by("seq", "id")
    # Keyset pages keep memory flat on long chains.
    last = (-1, -1)
    while True:
        page = list(base.filter(seq__gte=last[0]).exclude(seq=last[0], id__lte=last[1])[:BATCH])
        if not page:
            return
        yield from page
        last = (page[-1].seq, page[-1].id)


def _check(entry: AuditEntry, expected_seq: int, prev_hash: str) -> ChainProblem | None:
    def problem(reason: str, seq: int | None = None) -> ChainProblem:
        return ChainProblem(entry.workspace_id, seq or entry.seq, entry.id, reason)

    if entry.seq < expected_seq:
        return problem(f"duplicate seq {entry.seq} (inserted entry)")
    if entry.seq > expected_seq:
        missing = (
            f"seq {expected_seq}"
            if entry.seq == expected_seq + 1
            else f"seq {expected_seq}..{entry.seq - 1}"
        )
        return ChainProblem(
            entry.workspace_id,
            expected_seq,
            None,
            f"{missing} missing (deleted entry); next present is id={entry.id} seq={entry.seq}",
        )
    if entry.prev_hash != prev_hash:
        return problem("prev_hash does not match the previous entry (inserted or reordered)")
    if hash_of(entry) != entry.hash:
        return problem("hash does not match the entry's contents (modified entry)")
    return None


def _check_head(workspace_id: int | None, last_seq: int, last_hash: str) -> ChainProblem | None:
    head = AuditChainHead.objects.filter(chain=chain_key(workspace_id)).first()
    if head is None:
        if last_seq == 0:
            return None
        return ChainProblem(workspace_id, last_seq, None, "chain head row is missing")
    if head.last_seq > last_seq:
        return ChainProblem(
            workspace_id,
            last_seq + 1,
            None,
            f"seq {last_seq + 1}..{head.last_seq} missing at the end (deleted entries)",
        )
    if head.last_seq < last_seq:
        return ChainProblem(
            workspace_id,
            head.last_seq + 1,
            _entry_id(workspace_id, head.last_seq + 1),
            f"entries after the chain head seq {head.last_seq} (inserted entry)",
        )
    if head.last_hash != last_hash:
        return ChainProblem(
            workspace_id,
            last_seq,
            _entry_id(workspace_id, last_seq),
            "last entry's hash differs from the chain head (modified entry)",
        )
    return None


def _entry_id(workspace_id: int | None, seq: int) -> int | None:
    return (
        AuditEntry.objects.filter(workspace_id=workspace_id, seq=seq)
        .values_list("id", flat=True)
        .first()
    )
