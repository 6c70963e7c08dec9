"""Where apps built on top of orchestration plug into the cycle.

Orchestration never imports them (the dependency points one way); an app registers its
implementation in its AppConfig.ready(). Without one, the cycle still runs: green tests
stop at ready_for_review for a person to complete, and plans need no approval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestration.models import Subtask


@dataclass(frozen=True)
class Review:
    # After green tests (subtask locked, ready_for_review): open the change set and its gate.
    open: Callable[[Subtask, int], object]
    # Whether the developer may act on a subtask yet (a high-risk plan waits for approval).
    plan_gate_open: Callable[[Subtask, int], bool]
    # Open review comments of a feature, as a briefing section ("" when none).
    comments_for_briefing: Callable[[int], str]


_review: Review | None = None


def register_review(review: Review) -> None:
    global _review
    _review = review


def review() -> Review | None:
    return _review
