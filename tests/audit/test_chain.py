from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit.chain import GENESIS_HASH, entry_hash, hash_of
from audit.models import AppendOnlyError, AuditChainHead, AuditEntry
from audit.services import record_audit
from audit.verify import verify_chain
from tests.factories import WorkspaceFactory

TABLE = AuditEntry._meta.db_table


def _fill(workspace, count: int) -> list[AuditEntry]:
    return [
        record_audit(
            workspace=workspace,
            actor="user:alice",
            action="member.role_changed",
            target=f"user:bob{i}",
            details={"from": "reader", "to": "author", "n": i},
        )
        for i in range(count)
    ]


def _raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{T}", TABLE), params)


def test_entries_form_one_chain_per_workspace_and_one_global(workspace):
    # given
    other = WorkspaceFactory()
    # when
    mine = _fill(workspace, 3)
    theirs = _fill(other, 2)
    login = record_audit(workspace=None, actor="user:alice", action="auth.login")
    # then
    assert [e.seq for e in mine] == [1, 2, 3]
    assert [e.seq for e in theirs] == [1, 2]
    assert login.seq == 1 and login.workspace_id is None
    assert mine[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in mine[1:]] == [e.hash for e in mine[:-1]]
    stored = AuditEntry.objects.get(pk=mine[2].pk)
    assert hash_of(stored) == stored.hash == mine[2].hash
    assert all(verify_chain(w).intact for w in (workspace.pk, other.pk, None))


def test_orm_refuses_to_change_or_remove_entries(workspace):
    # given
    entry = _fill(workspace, 1)[0]
    # when / then
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(actor="user:mallory")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).actor == "user:alice"


def test_entry_rolls_back_with_the_action_it_records(workspace):
    # given
    _fill(workspace, 1)
    # when
    with pytest.raises(RuntimeError), transaction.atomic():
        record_audit(workspace=workspace, actor="user:alice", action="token.created")
        raise RuntimeError("the action failed")
    # then: nothing recorded and the chain continues where it was
    assert AuditEntry.objects.filter(workspace=workspace).count() == 1
    assert record_audit(workspace=workspace, actor="system", action="token.revoked").seq == 2
    assert verify_chain(workspace.pk).intact


def test_secret_looking_details_are_redacted(workspace):
    entry = record_audit(
        workspace=workspace,
        actor="user:alice",
        action="secret.updated",
        target="secret:API_KEY",
        details={"environment": "prod", "password": "hunter2", "nested": [{"key": "s3cr3t"}]},
    )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.details == {
        "environment": "prod",
        "password": "[redacted]",
        "nested": [{"key": "[redacted]"}],
    }
    assert "hunter2" not in str(stored.details) and "s3cr3t" not in stored.hash


@pytest.mark.parametrize("action", ["", "login", "Auth.Login", "auth.login; drop", "auth..x"])
def test_refuses_an_action_that_is_not_a_dotted_verb(workspace, action):
    with pytest.raises(ValueError, match="dotted"):
        record_audit(workspace=workspace, actor="user:alice", action=action)
    assert not AuditEntry.objects.exists()


# --- tampering, bypassing the ORM guard with raw SQL ---------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "user:mallory"),
        ("action", "auth.logout"),
        ("target", "user:nobody"),
        ("details", '{"from": "reader", "to": "admin", "n": 3}'),
        ("created_at", "2020-01-01 00:00:00+00:00"),
        ("workspace_id", None),
    ],
)
def test_detects_a_modified_entry_at_that_entry(workspace, column, value):
    # given
    entries = _fill(workspace, 6)
    victim = entries[3]
    # when
    _raw("UPDATE {T} SET " + column + " = %s WHERE id = %s", [value, victim.pk])
    # then
    report = verify_chain(workspace.pk)
    if column == "workspace_id":
        # moved out of its chain: this chain now misses seq 4
        assert (report.problem.seq, report.problem.entry_id) == (4, None)
        assert "seq 4 missing" in report.problem.reason
    else:
        assert (report.problem.seq, report.problem.entry_id) == (4, victim.pk)
        assert "modified" in report.problem.reason


def test_detects_a_modified_entry_whose_hash_was_recomputed_at_the_next_entry(workspace):
    # given: the attacker rewrites entry 2 and its own hash, but cannot fix entry 3's link
    entries = _fill(workspace, 4)
    victim = AuditEntry.objects.get(pk=entries[1].pk)
    victim.actor = "user:mallory"
    forged = hash_of(victim)
    # when
    _raw("UPDATE {T} SET actor = %s, hash = %s WHERE id = %s", ["user:mallory", forged, victim.pk])
    # then
    problem = verify_chain(workspace.pk).problem
    assert (problem.seq, problem.entry_id) == (3, entries[2].pk)
    assert "prev_hash" in problem.reason


def test_detects_a_deleted_entry_at_its_seq(workspace):
    entries = _fill(workspace, 5)
    _raw("DELETE FROM {T} WHERE id = %s", [entries[2].pk])
    problem = verify_chain(workspace.pk).problem
    assert problem.seq == 3
    assert "seq 3 missing" in problem.reason and f"id={entries[3].pk}" in problem.reason


def test_detects_a_deleted_last_entry_through_the_chain_head(workspace):
    entries = _fill(workspace, 3)
    _raw("DELETE FROM {T} WHERE id = %s", [entries[2].pk])
    problem = verify_chain(workspace.pk).problem
    assert problem.seq == 3 and "missing at the end" in problem.reason


def test_detects_an_entry_inserted_at_the_end_even_with_a_valid_hash(workspace):
    # given: a forger appends a well-formed entry but cannot move the chain head
    entries = _fill(workspace, 3)
    last = entries[-1]
    forged = AuditEntry(
        workspace_id=workspace.pk,
        seq=4,
        created_at=last.created_at,
        actor="user:mallory",
        action="member.role_changed",
        target="user:mallory",
        details={},
        prev_hash=last.hash,
    )
    forged.hash = hash_of(forged)
    # when
    _raw(
        "INSERT INTO {T} (workspace_id, seq, created_at, actor, action, target, details,"
        " prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            workspace.pk,
            4,
            last.created_at,
            forged.actor,
            forged.action,
            forged.target,
            "{}",
            forged.prev_hash,
            forged.hash,
        ],
    )
    # then
    inserted = AuditEntry.objects.get(workspace=workspace, seq=4)
    problem = verify_chain(workspace.pk).problem
    assert (problem.seq, problem.entry_id) == (4, inserted.pk)
    assert "inserted" in problem.reason


def test_detects_an_entry_inserted_in_the_middle_at_that_entry(workspace):
    # given: later entries are renumbered to make room for a forged seq 3
    entries = _fill(workspace, 5)
    _raw("UPDATE {T} SET seq = seq + 100 WHERE workspace_id = %s AND seq >= 3", [workspace.pk])
    _raw("UPDATE {T} SET seq = seq - 99 WHERE workspace_id = %s AND seq > 100", [workspace.pk])
    _raw(
        "INSERT INTO {T} (workspace_id, seq, created_at, actor, action, target, details,"
        " prev_hash, hash) VALUES (%s, 3, %s, 'user:mallory', 'auth.login', '', '{}', %s, %s)",
        [workspace.pk, entries[1].created_at, entries[1].hash, "f" * 64],
    )
    # then
    inserted = AuditEntry.objects.get(workspace=workspace, actor="user:mallory")
    problem = verify_chain(workspace.pk).problem
    assert (problem.seq, problem.entry_id) == (3, inserted.pk)


def test_verify_audit_command_exits_non_zero_naming_the_entry(workspace, capsys):
    # given
    other = WorkspaceFactory()
    entries = _fill(workspace, 3)
    _fill(other, 2)
    call_command("verify_audit")
    # when
    _raw("UPDATE {T} SET target = 'x' WHERE id = %s", [entries[1].pk])
    # then
    with pytest.raises(CommandError, match="1 of 2 audit chain"):
        call_command("verify_audit")
    err = capsys.readouterr().err
    assert f"workspace {workspace.pk}: entry id={entries[1].pk} seq=2" in err
    call_command("verify_audit", "--workspace", other.slug)
    with pytest.raises(CommandError, match="no workspace"):
        call_command("verify_audit", "--workspace", "nope")


def test_hash_covers_every_field():
    base = dict(
        workspace_id=1,
        seq=1,
        created_at=AuditEntry._meta.get_field("created_at").default(),
        actor="a",
        action="x.y",
        target="",
        details={},
        prev_hash=GENESIS_HASH,
    )
    changed = [
        ("workspace_id", 2),
        ("seq", 2),
        ("actor", "b"),
        ("action", "x.z"),
        ("target", "t"),
        ("details", {"k": 1}),
        ("prev_hash", "1" * 64),
    ]
    reference = entry_hash(**base)
    assert all(entry_hash(**{**base, k: v}) != reference for k, v in changed)


# --- concurrency --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_chain_holds_with_16_concurrent_writers():
    # given: on PostgreSQL the chain head's row lock serialises them, on SQLite the write lock
    workspace = WorkspaceFactory()
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                with transaction.atomic():
                    record_audit(
                        workspace=workspace,
                        actor=f"agent:bot{n}",
                        action="token.created",
                        target=f"{n}-{i}",
                    )
                record_audit(workspace=None, actor=f"agent:bot{n}", action="auth.login")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    # when
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert errors == []
    seqs = list(AuditEntry.objects.filter(workspace=workspace).values_list("seq", flat=True))
    assert sorted(seqs) == list(range(1, 81))
    assert verify_chain(workspace.pk).intact and verify_chain(None).intact
    assert AuditChainHead.objects.get(chain=workspace.pk).last_seq == 80
    assert AuditChainHead.objects.get(chain=0).last_seq == 80


def test_the_chain_outlives_its_workspace(workspace):
    # given
    entries = _fill(workspace, 2)
    workspace_id = workspace.pk
    # when
    workspace.delete()
    # then: nothing cascaded, nothing was rewritten
    assert list(AuditEntry.objects.filter(workspace_id=workspace_id).order_by("seq")) == entries
    assert verify_chain(workspace_id).intact
