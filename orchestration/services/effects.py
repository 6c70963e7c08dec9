"""Side effects of committed changes: scheduled on commit, never run inside a transaction.

Publishing to the broker can fail (Redis restarting). The change is committed by then, so a
failed publish is logged and left to the periodic sweeps — unhandled events, undispatched
runs and unsent test runs are all found again from the database — instead of turning a
successful request into an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import close_old_connections, connection, transaction
from django.db.utils import InterfaceError, OperationalError

from orchestration.models import Event

log = logging.getLogger(__name__)
T = TypeVar("T")


def enqueue_on_commit(task, *args: Any, countdown: float = 0) -> None:
    """Send a Celery task once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish(task, *args, countdown=countdown))


def publish(task, *args: Any, countdown: float = 0) -> bool:
    try:
        if countdown:
            task.apply_async(args, countdown=countdown)
        else:
            task.apply_async(args)
        return True
    except Exception:  # kombu raises several families here; the sweeps make up for all of them
        log.warning("could not publish %s%s; the sweep will retry", task.name, args, exc_info=True)
        return False


def handoff_on_commit(event: Event) -> None:
    """Hand the committed event to the workers, who run the handoff table for it."""
    from orchestration import tasks

    enqueue_on_commit(tasks.handle_event, event.pk)


def with_db_retry(func: Callable[[], T], *, attempts: int = 6, first_wait: float = 0.5) -> T:
    """Run `func`, retrying while the database is unreachable (a restart, a failover).

    Used where a worker holds a result only in memory — a finished agent run, a finished
    test run — so that a database blip delays recording it instead of losing it.
    """
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            return func()
        except (OperationalError, InterfaceError):
            if attempt == attempts or connection.in_atomic_block:
                raise
            log.warning("database unavailable (attempt %d); retrying in %.1fs", attempt, wait)
            connection.close()
            time.sleep(wait)
            wait = min(wait * 2, 8)
            close_old_connections()
    raise AssertionError("unreachable")
