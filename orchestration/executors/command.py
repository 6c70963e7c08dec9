"""Runs a configured command line (e.g. a CLI coding agent) inside the run's worktree.

The briefing is a file outside the worktree; the command sees only a clean environment
plus the secrets granted to its profile; a timeout and an output cap bound it. What it
changes in the worktree is committed by the caller. For a plan run, the command writes its
manifest as JSON to $CODEMAESTRO_RESULT_FILE (`{"manifest": {...}}`); any run may put
`{"usage": {"tokens_in": n, "tokens_out": n, "cost": x}}` there too.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from orchestration.executors.base import ExecutionResult, FailureClass, RunContext
from orchestration.models import AgentProfile
from orchestration.processes import ProcessError, clean_environment, run_process
from orchestration.realtime import RunLogStream

MAX_TIMEOUT_SECONDS = 1500  # stays under the execute_run task's time limit
DEFAULT_OUTPUT_CAP = 1_000_000
# A manifest is a few kilobytes; anything near this is a runaway agent, not a result.
MAX_RESULT_BYTES = 4 * 1024 * 1024
# The run's columns: PositiveIntegerField and DecimalField(max_digits=10, decimal_places=4).
# A value outside them would make recording the run fail and leave it running.
MAX_TOKENS = 2**31 - 1
MAX_COST = Decimal("999999.9999")
# Shorter values (e.g. "1") would mask ordinary output; such secrets are not keys anyway.
MIN_MASKED_SECRET_LENGTH = 6
USAGE_ERROR = (
    "the result file's usage must hold non-negative numbers "
    "(tokens_in, tokens_out as integers, cost)"
)


class _BadResult(Exception):
    pass


class CommandExecutor:
    kind = "command"

    def preflight(self, profile: AgentProfile, secrets: dict[str, str]) -> list[str]:
        config = profile.executor_config or {}
        try:
            argv = _argv(config.get("command", ""))
        except ValueError as exc:
            return [f"the command cannot be parsed: {exc}"]
        if not argv or not argv[0]:
            return [f"profile {profile.name} has no command configured"]
        problems = []
        if not _findable(argv[0]):
            problems.append(f"command not found: {argv[0]}")
        problems += _limit_problems(config)
        required = config.get("required_secrets", [])
        if not isinstance(required, list):
            # A bare string would be read letter by letter as secret names.
            problems.append("executor_config.required_secrets must be a list")
            required = []
        for name in required:
            if name not in secrets:
                problems.append(f"secret {name} is not granted to profile {profile.name}")
        return problems

    def execute(self, context: RunContext) -> ExecutionResult:
        config = context.profile.executor_config or {}
        briefing_file = context.scratch / "briefing.md"
        result_file = context.scratch / "result.json"
        # Explicit UTF-8: a worker under a non-UTF-8 locale must not fail on "é" or "✓".
        briefing_file.write_text(context.briefing, encoding="utf-8")
        run = context.run
        env = clean_environment(
            {
                **context.secrets,
                "CODEMAESTRO_BRIEFING_FILE": str(briefing_file),
                "CODEMAESTRO_RESULT_FILE": str(result_file),
                "CODEMAESTRO_RUN_ID": str(run.code),
                "CODEMAESTRO_ROLE": run.role,
                "CODEMAESTRO_STEP": run.step,
                "CODEMAESTRO_ATTEMPT": str(run.attempt),
                "CODEMAESTRO_WORKTREE": str(context.worktree),
            },
            home=context.scratch,
        )
        timeout = min(
            float(config.get("timeout", 900)), context.timeout_seconds, MAX_TIMEOUT_SECONDS
        )
        # The run page shows the output as it comes, masked as the stored output is.
        live = RunLogStream(
            workspace_id=run.workspace_id,
            run_id=run.pk,
            run_code=str(run.code),
            mask=lambda text: _mask(text, context.secrets),
        )
        try:
            outcome = run_process(
                config["command"],
                cwd=context.worktree,
                env=env,
                timeout=timeout,
                output_cap=int(config.get("output_cap", DEFAULT_OUTPUT_CAP)),
                on_output=live.feed,
            )
        except ProcessError as exc:
            return ExecutionResult.failed(str(exc), FailureClass.INFRASTRUCTURE)
        finally:
            live.close()
        # Run output is shown to every reader of the workspace; granted keys are not.
        output = _mask(outcome.output, context.secrets)
        if outcome.timed_out:
            return ExecutionResult.failed(
                f"the command timed out after {timeout:g}s", FailureClass.INFRASTRUCTURE, output
            )
        if outcome.cwd_removed or not context.worktree.is_dir():
            return ExecutionResult.failed(
                "the command deleted its worktree", FailureClass.INFRASTRUCTURE, output
            )
        if outcome.exit_code != 0:
            how = (
                f"exit code {outcome.exit_code}"
                if outcome.exit_code is not None
                else f"signal {outcome.killed_by}"
            )
            failed = ExecutionResult.failed(f"the command failed with {how}", output=output)
            return _with_usage_if_any(failed, result_file)
        return _with_result_file(result_file, output)


def _argv(command: Any) -> list[str]:
    """The command as run_process will run it: a string split with shlex, or a list as is."""
    if isinstance(command, str):
        return shlex.split(command)
    if isinstance(command, list) and all(isinstance(arg, str) for arg in command):
        return command
    return []


def _findable(program: str) -> bool:
    if "/" in program and not os.path.isabs(program):
        # Relative to the worktree, which does not exist yet: the run itself will tell.
        return True
    return shutil.which(program, path=clean_environment({})["PATH"]) is not None


def _limit_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    try:
        if not float(config.get("timeout", 900)) > 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append("executor_config.timeout must be a positive number")
    cap = config.get("output_cap", DEFAULT_OUTPUT_CAP)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        problems.append("executor_config.output_cap must be a non-negative integer")
    return problems


def _mask(text: str, secrets: dict[str, str]) -> str:
    for name, value in sorted(secrets.items(), key=lambda item: -len(item[1])):
        if len(value) >= MIN_MASKED_SECRET_LENGTH:
            text = text.replace(value, f"[secret {name}]")
    # A multi-line value (a PEM key) reaches the live log a line at a time: each of its
    # lines is masked too, so no batch boundary can let a part of it through.
    for name, value in secrets.items():
        for line in value.splitlines():
            if len(line.strip()) >= MIN_MASKED_SECRET_LENGTH and line != value:
                text = text.replace(line.strip(), f"[secret {name}]")
    return text


def _with_result_file(path: Path, output: str) -> ExecutionResult:
    try:
        data = _read_result(path)
        if data is None:
            return ExecutionResult(ok=True, output=output)
        tokens_in, tokens_out, cost = _usage(data.pop("usage", None))
    except _BadResult as exc:
        return ExecutionResult.failed(str(exc), output=output)
    return ExecutionResult(
        ok=True,
        output=output,
        result=data,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=cost,
    )


def _with_usage_if_any(failed: ExecutionResult, path: Path) -> ExecutionResult:
    """A failed command may still have spent tokens: the budget must see them."""
    try:
        data = _read_result(path)
        if data is not None:
            failed.tokens_in, failed.tokens_out, failed.cost = _usage(data.get("usage"))
    except _BadResult:
        pass  # the failure already says what went wrong; a broken file adds nothing
    return failed


def _read_result(path: Path) -> dict[str, Any] | None:
    """The result file's object, None when there is none; raises _BadResult otherwise."""
    try:
        # Not following links, and not blocking: a FIFO left there would hang the worker.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a symbolic link
        raise _BadResult("the result file must be a regular file") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _BadResult("the result file must be a regular file")
        raw = file.read(MAX_RESULT_BYTES + 1)
    if len(raw) > MAX_RESULT_BYTES:
        raise _BadResult(f"the result file is larger than {MAX_RESULT_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _BadResult(f"the result file is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadResult("the result file must hold a JSON object")
    return data


def _usage(usage: Any) -> tuple[int, int, Decimal]:
    if usage is None:
        return 0, 0, Decimal(0)
    if not isinstance(usage, dict):
        raise _BadResult(USAGE_ERROR)
    try:
        tokens_in = _count(usage.get("tokens_in", 0))
        tokens_out = _count(usage.get("tokens_out", 0))
        cost = Decimal(str(usage.get("cost", 0)))
    except (TypeError, ValueError, OverflowError, InvalidOperation):
        raise _BadResult(USAGE_ERROR) from None
    # A negative cost would give budget back; NaN and huge values cannot be stored.
    if not (cost.is_finite() and 0 <= cost <= MAX_COST):
        raise _BadResult(USAGE_ERROR)
    return tokens_in, tokens_out, cost


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    count = int(value)
    if not 0 <= count <= MAX_TOKENS:
        raise ValueError(value)
    return count
