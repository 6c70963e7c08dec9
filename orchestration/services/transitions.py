"""The one place where a subtask or feature changes state."""

from __future__ import annotations

from django.db import transaction
from django_fsm import ConcurrentTransition, can_proceed

from accounts.permissions import Principal
from orchestration import extensions
from orchestration.errors import InvalidInput, TransitionRefused
from orchestration.lock_objects import lock_feature, lock_subtask
from orchestration.models import (
    EventKind,
    FeatureRequest,
    Subtask,
    SubtaskDependency,
    SubtaskStatus,
)
from orchestration.models.subtasks import SUBTASK_TRANSITIONS
from orchestration.models.subtasks import allowed_transitions as allowed_from
from orchestration.services import effects
from orchestration.services.events import event_record

FEATURE_TRANSITIONS = ("plan", "finish_planning", "begin", "finish", "cancel")


def allowed_transitions(subtask: Subtask) -> list[str]:
    return allowed_from(subtask.status)


def unfinished_dependencies(subtask: Subtask) -> list[str]:
    return list(
        SubtaskDependency.objects.filter(subtask=subtask)
        .exclude(depends_on__status=SubtaskStatus.COMPLETED)
        .order_by("depends_on__key")
        .values_list("depends_on__key", flat=True)
    )


def apply_subtask_transition(
    subtask: Subtask, name: str, *, actor: str, reason: str = ""
) -> Subtask:
    """Apply a transition to a subtask already locked by the caller's transaction."""
    if name not in SUBTASK_TRANSITIONS:
        raise InvalidInput(
            f"unknown transition {name!r}; known: {', '.join(SUBTASK_TRANSITIONS)}",
            allowed=allowed_transitions(subtask),
        )
    method = getattr(subtask, name)
    before = subtask.status
    if not can_proceed(method):
        raise TransitionRefused(
            f"cannot {name} a subtask that is {before}",
            status=before,
            allowed=allowed_transitions(subtask),
        )
    if name == "start":
        waiting_on = unfinished_dependencies(subtask)
        if waiting_on:
            raise TransitionRefused(
                f"cannot start: waiting on unfinished dependencies {', '.join(waiting_on)}",
                status=before,
                allowed=allowed_transitions(subtask),
            )
    method()
    if name in ("block", "escalate") and reason:
        subtask.blocked_reason = reason
    try:
        subtask.save()
    except ConcurrentTransition:
        raise TransitionRefused(
            f"cannot {name}: the subtask changed concurrently", status=before, allowed=[]
        ) from None
    event = event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.SUBTASK_TRANSITION,
        message=f"{subtask.key} {before} → {subtask.status} ({name})"
        + (f": {reason}" if reason else ""),
        actor=actor,
        subtask=subtask,
        data={"transition": name, "from": before, "to": subtask.status, "reason": reason},
    )
    effects.handoff_on_commit(event)
    return subtask


@transaction.atomic(durable=True)
def subtask_transition(
    *,
    subtask: Subtask,
    name: str,
    actor: str,
    reason: str = "",
    principal: Principal | None = None,
) -> Subtask:
    """Lock the subtask, apply the named transition, record it; refuse with the allowed ones.

    `principal` is the person asking (pages, API, admin): completing a subtask under review
    or sending it back goes through the review app's approval rules, never around them.
    """
    review = extensions.review()
    if review is not None and review.decide_transition is not None:
        decided = review.decide_transition(subtask, name, principal, reason)
        if decided is not None:
            return decided
    locked = lock_subtask(subtask.pk)
    return apply_subtask_transition(locked, name, actor=actor, reason=reason)


def apply_feature_transition(feature: FeatureRequest, name: str, *, actor: str) -> FeatureRequest:
    if name not in FEATURE_TRANSITIONS:
        raise InvalidInput(f"unknown feature transition {name!r}")
    method = getattr(feature, name)
    before = feature.status
    if not can_proceed(method):
        raise TransitionRefused(f"cannot {name} a feature that is {before}", status=before)
    method()
    try:
        feature.save()
    except ConcurrentTransition:
        raise TransitionRefused(f"cannot {name}: the feature changed concurrently") from None
    event = event_record(
        workspace_id=feature.workspace_id,
        kind=EventKind.FEATURE_TRANSITION,
        message=f"feature {feature.slug} {before} → {feature.status} ({name})",
        actor=actor,
        feature=feature,
        data={"transition": name, "from": before, "to": feature.status},
    )
    effects.handoff_on_commit(event)
    return feature


@transaction.atomic(durable=True)
def feature_transition(*, feature: FeatureRequest, name: str, actor: str) -> FeatureRequest:
    return apply_feature_transition(lock_feature(feature.pk), name, actor=actor)
