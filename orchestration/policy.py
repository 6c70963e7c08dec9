"""A project's policy (retries, backoff, budgets, merge mode), with defaults and validation.

Policies are stored as JSON on the project so admins can change them without a migration;
this module is the one reader, so every caller sees the same defaults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from orchestration.models import Project


@dataclass(frozen=True)
class Budget:
    run_tokens: int | None = None
    run_cost: Decimal | None = None
    run_seconds: int | None = None
    feature_tokens: int | None = None
    feature_cost: Decimal | None = None
    feature_seconds: int | None = None


@dataclass(frozen=True)
class Policy:
    max_attempts: int = 3
    max_tester_attempts: int = 3
    max_infra_failures: int = 5
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 900.0
    flaky_reruns: int = 1
    test_timeout_seconds: int = 600
    notify_webhook: str = ""
    budget: Budget = Budget()

    def backoff(self, attempt: int) -> timedelta:
        """Exponential backoff with jitter: attempt n waits half to all of base * 2**(n-1)."""
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(attempt - 1, 0))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def policy_for(project: Project) -> Policy:
    raw = project.policy or {}
    budget = raw.get("budget") or {}
    return Policy(
        max_attempts=int(raw.get("max_attempts", 3)),
        max_tester_attempts=int(raw.get("max_tester_attempts", 3)),
        max_infra_failures=int(raw.get("max_infra_failures", 5)),
        backoff_seconds=float(raw.get("backoff_seconds", 30)),
        backoff_max_seconds=float(raw.get("backoff_max_seconds", 900)),
        flaky_reruns=int(raw.get("flaky_reruns", 1)),
        test_timeout_seconds=int(raw.get("test_timeout_seconds", 600)),
        notify_webhook=str(raw.get("notify_webhook", "")),
        budget=Budget(
            run_tokens=budget.get("run_tokens"),
            run_cost=_decimal(budget.get("run_cost")),
            run_seconds=budget.get("run_seconds"),
            feature_tokens=budget.get("feature_tokens"),
            feature_cost=_decimal(budget.get("feature_cost")),
            feature_seconds=budget.get("feature_seconds"),
        ),
    )
