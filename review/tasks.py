"""Celery tasks of the review app: thin, ids only, safe to run twice."""

from __future__ import annotations

from celery import shared_task


# The merge may run the project's tests on a merge commit first (a moved main).
@shared_task(name="review.merge_changeset", time_limit=1800, soft_time_limit=1750)
def merge_changeset(changeset_id: int) -> str:
    from review.services import merging

    return merging.changeset_merge(changeset_id).message
