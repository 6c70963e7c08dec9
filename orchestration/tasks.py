"""Celery tasks: thin, named, ids only; each calls one service and is safe to run twice."""

from __future__ import annotations

import socket

from celery import shared_task
from celery.signals import worker_ready

FALLBACK_WORKER = f"celery@{socket.gethostname()}"


def _worker(task) -> str:
    """The Celery node name (celery@host, or -n NAME): stable across restarts of a worker."""
    return f"worker:{task.request.hostname or FALLBACK_WORKER}"


@shared_task(name="orchestration.reap_expired_leases", time_limit=60, soft_time_limit=50)
def reap_expired_leases() -> int:
    from orchestration.services import recovery

    return recovery.reap_and_redispatch()


@shared_task(name="orchestration.sweep", time_limit=60, soft_time_limit=50)
def sweep() -> int:
    """Make up for lost messages: due runs to workers, unhandled events to handoffs."""
    from orchestration.services import dispatch, handoffs

    return dispatch.dispatch_due_runs() + handoffs.rehandle_unhandled_events()


@shared_task(name="orchestration.handle_event", time_limit=120, soft_time_limit=100)
def handle_event(event_id: int) -> None:
    from orchestration.services import handoffs

    handoffs.handle_event(event_id)


# Executors are capped below this (command timeout ≤ 1500 s), which stays well under the
# Redis broker's visibility timeout, so a slow run is never redelivered while it runs.
@shared_task(bind=True, name="orchestration.execute_run", time_limit=1800, soft_time_limit=1750)
def execute_run(self, run_id: int) -> str:
    from orchestration.services import execution

    return execution.run_execute(run_id, worker=_worker(self))


@shared_task(
    bind=True, name="orchestration.execute_test_run", time_limit=1800, soft_time_limit=1750
)
def execute_test_run(self, test_run_id: int) -> str:
    from orchestration.services import testing

    return testing.testrun_execute(test_run_id, worker=_worker(self))


@shared_task(
    name="orchestration.notify",
    time_limit=30,
    soft_time_limit=25,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def notify(event_id: int) -> None:
    from orchestration.services import notifications

    notifications.deliver(event_id)


@worker_ready.connect
def _reconcile_on_start(sender=None, **kwargs) -> None:
    from orchestration.services import recovery

    recovery.reconcile_on_worker_start(f"worker:{getattr(sender, 'hostname', FALLBACK_WORKER)}")
