from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orchestration.errors import InvalidInput, LeaseLost
from orchestration.models import AgentRun, Event, EventKind, RunStatus
from orchestration.services import runs
from tests.factories import RunFactory, SubtaskFactory

pytestmark = pytest.mark.django_db
CLAIMER = runs.Claimer(name="agent:test")


def claim(run_or_subtask, role="developer", **kwargs):
    return runs.run_claim(
        workspace_id=run_or_subtask.workspace_id, role=role, claimer=CLAIMER, **kwargs
    )


def test_claim_hands_out_the_oldest_runnable_run_of_the_role():
    # given
    subtask = SubtaskFactory()
    now = timezone.now()
    newer = RunFactory(subtask=subtask, available_at=now - timedelta(seconds=5))
    older = RunFactory(subtask=subtask, available_at=now - timedelta(seconds=60))
    RunFactory(subtask=subtask, role="tester", step="tests", available_at=now - timedelta(hours=1))
    RunFactory(subtask=subtask, available_at=now + timedelta(hours=1))  # backoff not over
    # when
    first, second, third = claim(subtask), claim(subtask), claim(subtask)
    # then
    assert (first.pk, second.pk, third) == (older.pk, newer.pk, None)
    assert first.status == RunStatus.RUNNING
    assert first.claimed_by == "agent:test"
    assert first.lease_id is not None
    assert first.claim_count == 1
    assert Event.objects.filter(run=first, kind=EventKind.RUN_CLAIMED).count() == 1


def test_claim_is_scoped_to_the_workspace():
    run = RunFactory()
    other = SubtaskFactory()
    assert claim(other) is None
    assert AgentRun.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_claim_refuses_an_out_of_range_lease():
    run = RunFactory()
    with pytest.raises(InvalidInput, match="lease_seconds must be between 1 and"):
        claim(run, lease_seconds=10**6)
    assert AgentRun.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_heartbeat_extends_the_lease_of_the_holder_only():
    # given
    run = claim(RunFactory(), lease_seconds=30)
    first_expiry = run.lease_expires_at
    # when
    extended = runs.run_heartbeat(run=run, lease_id=run.lease_id, lease_seconds=600)
    # then
    assert extended.lease_expires_at > first_expiry + timedelta(seconds=500)
    with pytest.raises(LeaseLost):
        runs.run_heartbeat(run=run, lease_id=uuid.uuid4())


def test_complete_records_output_and_usage_and_refuses_a_second_finish():
    # given
    run = claim(RunFactory())
    # when
    done = runs.run_complete(
        run=run, lease_id=run.lease_id, output="ok", tokens_in=10, tokens_out=5, cost=0.25
    )
    # then
    assert (done.status, done.output, done.tokens_in, done.tokens_out) == ("succeeded", "ok", 10, 5)
    assert str(done.cost) == "0.2500"
    assert done.finished_at is not None
    with pytest.raises(LeaseLost, match="run is succeeded, not running"):
        runs.run_fail(run=run, lease_id=run.lease_id, error="late")
    assert Event.objects.filter(run=run, kind=EventKind.RUN_FAILED).count() == 0


def test_fail_records_the_reason_and_class():
    run = claim(RunFactory())
    failed = runs.run_fail(
        run=run, lease_id=run.lease_id, error="binary missing", failure_class="infrastructure"
    )
    assert failed.status == RunStatus.FAILED
    assert failed.error == "binary missing"
    assert failed.result == {"failure_class": "infrastructure"}
    event = Event.objects.get(run=run, kind=EventKind.RUN_FAILED)
    assert event.data["failure_class"] == "infrastructure"


def test_reaper_returns_expired_runs_to_the_queue_and_they_can_be_claimed_again():
    # given
    run = claim(RunFactory(), lease_seconds=1)
    stale_lease = run.lease_id
    AgentRun.objects.filter(pk=run.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    # when
    reaped = runs.runs_reap_expired()
    # then
    assert reaped == 1
    run.refresh_from_db()
    assert (run.status, run.lease_id, run.claimed_by) == (RunStatus.QUEUED, None, "")
    assert Event.objects.filter(run=run, kind=EventKind.RUN_LEASE_EXPIRED).count() == 1
    with pytest.raises(LeaseLost):
        runs.run_complete(run=run, lease_id=stale_lease)
    again = claim(run)
    assert again.pk == run.pk
    assert again.claim_count == 2


def test_reaper_leaves_live_leases_alone():
    run = claim(RunFactory(), lease_seconds=300)
    assert runs.runs_reap_expired() == 0
    assert AgentRun.objects.get(pk=run.pk).status == RunStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_parallel_claimers_drain_two_thousand_runs_each_exactly_once():
    # given: 2,000 queued runs and 8 claimers on their own connections
    subtask = SubtaskFactory()
    AgentRun.objects.bulk_create(
        AgentRun(
            workspace_id=subtask.workspace_id,
            project_id=subtask.project_id,
            subtask=subtask,
            role="developer",
            step="implementation",
        )
        for _ in range(2000)
    )
    claimed: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def drain(slot: int) -> None:
        barrier.wait()
        try:
            while (run := claim(subtask)) is not None:
                claimed[slot].append(run.pk)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=drain, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    every = [pk for slot in claimed for pk in slot]
    assert len(every) == 2000
    assert len(set(every)) == 2000
    assert sum(1 for slot in claimed if slot) >= 2  # the work really was shared
    assert AgentRun.objects.filter(status=RunStatus.RUNNING, claim_count=1).count() == 2000
    assert Event.objects.filter(kind=EventKind.RUN_CLAIMED).count() == 2000
