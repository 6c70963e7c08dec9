"""Side effects of committed changes: scheduled on commit, never run inside a transaction."""

from __future__ import annotations

from django.db import transaction

from orchestration.models import Event


def after_transition(event: Event) -> None:
    """Hand the committed event to the workers, who run the handoff table for it."""
    from orchestration import tasks

    tasks.handle_event.delay_on_commit(event.pk)


def after_run_finished(event: Event) -> None:
    from orchestration import tasks

    tasks.handle_event.delay_on_commit(event.pk)


def on_commit(func) -> None:
    transaction.on_commit(func)
