"""Celery tasks: thin, named, ids only; each calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="orchestration.reap_expired_leases", time_limit=60, soft_time_limit=50)
def reap_expired_leases() -> int:
    from orchestration.services import runs

    return runs.runs_reap_expired()


@shared_task(name="orchestration.handle_event", time_limit=120, soft_time_limit=100)
def handle_event(event_id: int) -> None:
    from orchestration.services import handoffs

    handoffs.handle_event(event_id)
