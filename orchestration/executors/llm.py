"""An OpenAI-compatible chat-completions endpoint, with the workspace's own key (BYOK).

The model gets the profile's prompt template as the system message and the briefing as the
user message. A plan run must answer with the manifest as JSON; a tests or implementation
run answers with its edits, either as unified diffs in ```diff blocks (applied with
`git apply`) or as whole files between `=== FILE: path ===` and `=== END FILE ===` lines.
Anything else is a failed run with a message saying what was expected.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import httpx

import gitops
from orchestration.executors.base import ExecutionResult, FailureClass, RunContext
from orchestration.models import AgentProfile, RunStep

FORMAT_RULES = {
    RunStep.PLAN: 'Answer with one JSON object only: {"frd": str, "subtasks": [{"key", '
    '"title", "description", "requirements": {"developer", "tester"}, '
    '"depends_on": [keys], "risk": low|medium|high, "estimate_hours"}]}.',
    "edits": "Answer with your edits only: unified diffs in ```diff blocks relative to the "
    "repository root, or whole files as '=== FILE: path ===' … '=== END FILE ==='.",
}
DIFF_BLOCK = re.compile(r"```(?:diff|patch)\n(.*?)```", re.DOTALL)
FILE_BLOCK = re.compile(r"^=== FILE: (.+?) ===\n(.*?)^=== END FILE ===$", re.DOTALL | re.MULTILINE)
JSON_BLOCK = re.compile(r"```(?:json)?\n(.*?)```", re.DOTALL)


class LLMExecutor:
    kind = "llm"

    def preflight(self, profile: AgentProfile, secrets: dict[str, str]) -> list[str]:
        config = profile.executor_config or {}
        problems = []
        if urlparse(config.get("base_url", "")).scheme not in ("http", "https"):
            problems.append("executor_config.base_url must be an http(s) URL")
        if not config.get("model"):
            problems.append("executor_config.model is required")
        key_name = config.get("api_key_secret", "")
        if key_name and key_name not in secrets:
            problems.append(f"secret {key_name} is not granted to profile {profile.name}")
        return problems

    def execute(self, context: RunContext) -> ExecutionResult:
        config = context.profile.executor_config
        step = context.run.step
        rules = FORMAT_RULES[RunStep.PLAN] if step == RunStep.PLAN else FORMAT_RULES["edits"]
        headers = {"Content-Type": "application/json"}
        if key_name := config.get("api_key_secret"):
            headers["Authorization"] = f"Bearer {context.secrets[key_name]}"
        body = {
            "model": config["model"],
            "messages": [
                {"role": "system", "content": f"{context.profile.prompt_template}\n\n{rules}"},
                {"role": "user", "content": context.briefing},
            ],
            "max_tokens": int(config.get("max_tokens", 4096)),
            "temperature": float(config.get("temperature", 0)),
        }
        url = config["base_url"].rstrip("/") + "/chat/completions"
        timeout = min(float(config.get("timeout", 120)), context.timeout_seconds)
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return ExecutionResult.failed(
                f"the model did not answer within {timeout:g}s", FailureClass.INFRASTRUCTURE
            )
        except httpx.HTTPError as exc:
            return ExecutionResult.failed(
                f"cannot reach the model endpoint: {type(exc).__name__}",
                FailureClass.INFRASTRUCTURE,
            )
        if response.status_code != 200:
            # The body may echo the request; never copy it into the run record.
            return ExecutionResult.failed(
                f"the model endpoint answered HTTP {response.status_code}",
                FailureClass.INFRASTRUCTURE,
            )
        return self._interpret(context, response, config)

    def _interpret(
        self, context: RunContext, response: httpx.Response, config: dict
    ) -> ExecutionResult:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            return ExecutionResult.failed("the model's answer is not a chat completion")
        usage = data.get("usage") or {}
        tokens_in, tokens_out = (
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
        cost = (
            Decimal(str(config.get("price_per_1k_input", 0))) * tokens_in
            + Decimal(str(config.get("price_per_1k_output", 0))) * tokens_out
        ) / 1000
        if context.run.step == RunStep.PLAN:
            outcome = _plan(content)
        else:
            outcome = _apply_edits(context.worktree, content)
        outcome.tokens_in, outcome.tokens_out, outcome.cost = tokens_in, tokens_out, cost
        return outcome


def _plan(content: str) -> ExecutionResult:
    fenced = JSON_BLOCK.search(content)
    text = fenced.group(1) if fenced else content
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        return ExecutionResult.failed(f"the model's plan is not JSON: {exc}", output=content)
    return ExecutionResult(ok=True, output=content, result={"manifest": manifest})


def _apply_edits(worktree: Path, content: str) -> ExecutionResult:
    diffs = DIFF_BLOCK.findall(content)
    files = FILE_BLOCK.findall(content)
    if not diffs and not files:
        return ExecutionResult.failed(
            "the model's answer contains no edits (expected ```diff blocks or === FILE: blocks)",
            output=content,
        )
    for patch in diffs:
        try:
            gitops.apply_patch(worktree, patch if patch.endswith("\n") else patch + "\n")
        except gitops.GitError as exc:
            return ExecutionResult.failed(f"the model's diff does not apply: {exc}", output=content)
    for raw_path, text in files:
        target = _inside(worktree, raw_path.strip())
        if target is None:
            return ExecutionResult.failed(
                f"refused file path outside the repository: {raw_path!r}", output=content
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return ExecutionResult(ok=True, output=content)


def _inside(worktree: Path, raw: str) -> Path | None:
    relative = PurePosixPath(raw)
    if relative.is_absolute() or ".." in relative.parts or relative.parts[:1] == (".git",):
        return None
    return worktree / relative
