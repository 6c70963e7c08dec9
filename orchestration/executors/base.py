"""One interface for every way an agent runs: external, command, LLM API, demo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from orchestration.models import AgentProfile, AgentRun


class FailureClass:
    AGENT = "agent"  # the agent's work is wrong: counts against its retries and breaker
    INFRASTRUCTURE = "infrastructure"  # crashed, missing binary, timeout, git: not its fault
    FLAKY = "flaky"
    BUDGET = "budget"


@dataclass
class RunContext:
    run: AgentRun
    profile: AgentProfile
    worktree: Path
    briefing: str
    secrets: dict[str, str]
    timeout_seconds: float
    scratch: Path  # outside the worktree: briefing and result files, never committed
    # Called by long executors between steps; raises if the lease was lost (run cancelled).
    keep_alive: Callable[[], None] = lambda: None


@dataclass
class ExecutionResult:
    ok: bool
    output: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    failure_class: str = FailureClass.AGENT
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)

    @classmethod
    def failed(cls, error: str, failure_class: str = FailureClass.AGENT, output: str = ""):
        return cls(ok=False, error=error, failure_class=failure_class, output=output)


class Executor(Protocol):
    kind: str

    def preflight(self, profile: AgentProfile, secrets: dict[str, str]) -> list[str]:
        """Problems that make a run pointless to start (missing binary, missing secret)."""

    def execute(self, context: RunContext) -> ExecutionResult: ...


def executor_for(profile: AgentProfile) -> Executor:
    from orchestration.executors.command import CommandExecutor
    from orchestration.executors.demo import DemoExecutor
    from orchestration.executors.llm import LLMExecutor

    executors: dict[str, type] = {
        "command": CommandExecutor,
        "demo": DemoExecutor,
        "llm": LLMExecutor,
    }
    try:
        return executors[profile.executor]()
    except KeyError:
        raise ValueError(
            f"profile {profile.name} has no push executor ({profile.executor})"
        ) from None
