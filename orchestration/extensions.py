"""Where apps built on top of orchestration plug into the cycle.

Orchestration never imports them (the dependency points one way); an app registers its
implementation in its AppConfig.ready(). Without one, the cycle still runs: green tests
stop at ready_for_review for a person to complete, and plans need no approval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accounts.permissions import Principal
from orchestration.models import Subtask


@dataclass(frozen=True)
class Review:
    # After green tests (subtask locked, ready_for_review): open the change set and its gate.
    open: Callable[[Subtask, int], object]
    # Whether the developer may act on a subtask yet (a high-risk plan waits for approval).
    plan_gate_open: Callable[[Subtask, int], bool]
    # Open review comments of a feature, as a briefing section ("" when none).
    comments_for_briefing: Callable[[int], str]
    # A person's (or, with no principal, an internal caller's) `complete` or
    # `request_changes` on a subtask: a subtask under review is decided by the review's
    # approval rules, so no entry point (page, API, admin) can bypass them. Returns the
    # subtask as decided, or None when it is not under review (the plain transition
    # applies). Called in the caller's transaction, before the subtask is locked.
    decide_transition: Callable[[Subtask, str, Principal | None, str], Subtask | None] | None = None


_review: Review | None = None


def register_review(review: Review) -> None:
    global _review
    _review = review


def review() -> Review | None:
    return _review
