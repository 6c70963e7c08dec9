"""Runs a configured command line (e.g. a CLI coding agent) inside the run's worktree.

The briefing is a file outside the worktree; the command sees only a clean environment
plus the secrets granted to its profile; a timeout and an output cap bound it. What it
changes in the worktree is committed by the caller. For a plan run, the command writes its
manifest as JSON to $CODEMAESTRO_RESULT_FILE (`{"manifest": {...}}`); any run may put
`{"usage": {"tokens_in": n, "tokens_out": n, "cost": x}}` there too.
"""

from __future__ import annotations

import json
import shlex
import shutil
from decimal import Decimal, InvalidOperation
from pathlib import Path

from orchestration.executors.base import ExecutionResult, FailureClass, RunContext
from orchestration.models import AgentProfile
from orchestration.processes import ProcessError, clean_environment, run_process

MAX_TIMEOUT_SECONDS = 1500  # stays under the execute_run task's time limit
DEFAULT_OUTPUT_CAP = 1_000_000


class CommandExecutor:
    kind = "command"

    def preflight(self, profile: AgentProfile, secrets: dict[str, str]) -> list[str]:
        config = profile.executor_config or {}
        command = config.get("command", "")
        if not command:
            return [f"profile {profile.name} has no command configured"]
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            return [f"the command cannot be parsed: {exc}"]
        problems = []
        path = clean_environment({})["PATH"]
        if not argv or shutil.which(argv[0], path=path) is None:
            problems.append(f"command not found: {argv[0] if argv else command!r}")
        for name in config.get("required_secrets", []):
            if name not in secrets:
                problems.append(f"secret {name} is not granted to profile {profile.name}")
        return problems

    def execute(self, context: RunContext) -> ExecutionResult:
        config = context.profile.executor_config or {}
        briefing_file = context.scratch / "briefing.md"
        result_file = context.scratch / "result.json"
        briefing_file.write_text(context.briefing)
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
        try:
            outcome = run_process(
                config["command"],
                cwd=context.worktree,
                env=env,
                timeout=timeout,
                output_cap=int(config.get("output_cap", DEFAULT_OUTPUT_CAP)),
            )
        except ProcessError as exc:
            return ExecutionResult.failed(str(exc), FailureClass.INFRASTRUCTURE)
        output = outcome.output
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
                else (f"signal {outcome.killed_by}")
            )
            return ExecutionResult.failed(
                f"the command failed with {how}", FailureClass.AGENT, output
            )
        return _with_result_file(result_file, output)


def _with_result_file(path: Path, output: str) -> ExecutionResult:
    if not path.exists():
        return ExecutionResult(ok=True, output=output)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return ExecutionResult.failed(f"the result file is not valid JSON: {exc}", output=output)
    if not isinstance(data, dict):
        return ExecutionResult.failed("the result file must hold a JSON object", output=output)
    usage = data.pop("usage", {}) or {}
    try:
        return ExecutionResult(
            ok=True,
            output=output,
            result=data,
            tokens_in=int(usage.get("tokens_in", 0)),
            tokens_out=int(usage.get("tokens_out", 0)),
            cost=Decimal(str(usage.get("cost", 0))),
        )
    except (TypeError, ValueError, InvalidOperation):
        return ExecutionResult.failed("the result file's usage must hold numbers", output=output)
