"""Putting work back on its feet after crashes: expired leases, lost messages, restarts."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestration.models import AgentRun, RunStatus, TestRun, TestRunStatus
from orchestration.services import dispatch, runs
from orchestration.services.effects import enqueue_on_commit, publish

log = logging.getLogger(__name__)


def reap_and_redispatch() -> int:
    """Runs and test runs whose holder vanished go back to the queue and out to workers."""
    reaped = runs.runs_reap_expired()
    reaped += requeue_stale_test_runs()
    dispatch.dispatch_due_runs()
    return reaped


def requeue_stale_test_runs() -> int:
    from orchestration import tasks

    stale = list(
        TestRun.objects.filter(
            status=TestRunStatus.RUNNING, lease_expires_at__lt=timezone.now()
        ).values_list("pk", flat=True)
    )
    # A queued test run whose message was lost (broker restart) is re-sent after a while,
    # and then not again until that while has passed once more.
    resend_before = timezone.now() - timezone.timedelta(
        seconds=settings.CODEMAESTRO["RESEND_TESTRUN_SECONDS"]
    )
    lost = list(
        TestRun.objects.filter(
            status=TestRunStatus.QUEUED, dispatched_at__lt=resend_before
        ).values_list("pk", flat=True)[:200]
    )
    TestRun.objects.filter(pk__in=lost).update(dispatched_at=timezone.now())
    for pk in stale:
        with transaction.atomic():
            if TestRun.objects.filter(pk=pk, status=TestRunStatus.RUNNING).update(
                status=TestRunStatus.QUEUED, lease_expires_at=None, dispatched_at=timezone.now()
            ):
                enqueue_on_commit(tasks.execute_test_run, pk)
    for pk in lost:
        publish(tasks.execute_test_run, pk)
    return len(stale)


def reconcile_on_worker_start(worker: str) -> int:
    """A worker that starts owns nothing yet: runs its previous life held go back at once.

    Without this they would wait for their leases to expire.
    """
    orphaned = list(
        AgentRun.objects.filter(status=RunStatus.RUNNING, claimed_by=worker).values_list(
            "pk", "lease_id"
        )
    )
    expired = timezone.now() - timezone.timedelta(seconds=1)
    for pk, lease_id in orphaned:
        AgentRun.objects.filter(pk=pk, status=RunStatus.RUNNING, lease_id=lease_id).update(
            lease_expires_at=expired
        )
    TestRun.objects.filter(status=TestRunStatus.RUNNING, claimed_by=worker).update(
        lease_expires_at=expired
    )
    count = reap_and_redispatch()
    if orphaned:
        log.warning(
            "worker %s restarted: %d runs of its previous life requeued", worker, len(orphaned)
        )
    return count
