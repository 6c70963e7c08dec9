"""An OpenAI-compatible chat-completions endpoint, with the workspace's own key (BYOK).

The model gets the profile's prompt template as the system message and the briefing as the
user message. A plan run must answer with the manifest as JSON; a tests or implementation
run answers with its edits, either as unified diffs in ```diff blocks (applied with
`git apply`) or as whole files between `=== FILE: path ===` and `=== END FILE ===` lines.
Anything else is a failed run with a message saying what was expected. The edits of one
answer are applied all or nothing.
"""

from __future__ import annotations

import functools
import json
import re
import ssl
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Any
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
NO_EDITS = "the model's answer contains no edits (expected ```diff blocks or === FILE: blocks)"
FILE_BLOCK = re.compile(r"^=== FILE: (.+?) ===\n(.*?)^=== END FILE ===$", re.DOTALL | re.MULTILINE)
FENCE = "```"
# A chat answer is at most a few hundred kilobytes; more is a broken or hostile endpoint.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# The run's token columns are PositiveIntegerFields.
MAX_TOKENS = 2**31 - 1
NUMBER_SETTINGS = {
    "timeout": "a positive number",
    "max_tokens": "a positive integer",
    "temperature": "a number",
    "price_per_1k_input": "a non-negative number",
    "price_per_1k_output": "a non-negative number",
}


class _AnswerTooLarge(Exception):
    pass


class LLMExecutor:
    kind = "llm"

    def preflight(self, profile: AgentProfile, secrets: dict[str, str]) -> list[str]:
        config = profile.executor_config or {}
        problems = []
        if urlparse(str(config.get("base_url", ""))).scheme not in ("http", "https"):
            problems.append("executor_config.base_url must be an http(s) URL")
        if not config.get("model"):
            problems.append("executor_config.model is required")
        key_name = config.get("api_key_secret", "")
        if key_name and key_name not in secrets:
            problems.append(f"secret {key_name} is not granted to profile {profile.name}")
        for name, expected in NUMBER_SETTINGS.items():
            if name in config and not _valid_number(config[name], expected):
                problems.append(f"executor_config.{name} must be {expected}")
        return problems

    def execute(self, context: RunContext) -> ExecutionResult:
        config = context.profile.executor_config
        step = context.run.step
        rules = FORMAT_RULES[RunStep.PLAN] if step == RunStep.PLAN else FORMAT_RULES["edits"]
        headers = {"Content-Type": "application/json"}
        if key_name := config.get("api_key_secret"):
            # Keys pasted into the secrets form often carry a newline, which no header allows.
            headers["Authorization"] = f"Bearer {context.secrets[key_name].strip()}"
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
            status, raw = _post(url, body, headers, timeout)
        except httpx.TimeoutException:
            return ExecutionResult.failed(
                f"the model did not answer within {timeout:g}s", FailureClass.INFRASTRUCTURE
            )
        except httpx.HTTPError as exc:
            return ExecutionResult.failed(
                f"cannot reach the model endpoint: {type(exc).__name__}",
                FailureClass.INFRASTRUCTURE,
            )
        except _AnswerTooLarge:
            return ExecutionResult.failed(
                f"the model's answer is larger than {MAX_RESPONSE_BYTES} bytes",
                FailureClass.INFRASTRUCTURE,
            )
        if status != 200:
            # The body may echo the request; never copy it into the run record.
            return ExecutionResult.failed(
                f"the model endpoint answered HTTP {status}", FailureClass.INFRASTRUCTURE
            )
        return self._interpret(context, raw, config)

    def _interpret(self, context: RunContext, raw: bytes, config: dict) -> ExecutionResult:
        try:
            data = json.loads(raw)
        except ValueError:  # also UnicodeDecodeError
            data = None
        tokens_in, tokens_out = _usage(data)
        try:
            content = data["choices"][0]["message"]["content"] or ""
            if not isinstance(content, str):
                raise TypeError(content)
        except (KeyError, IndexError, TypeError):
            outcome = ExecutionResult.failed("the model's answer is not a chat completion")
        else:
            if context.run.step == RunStep.PLAN:
                outcome = _plan(content)
            else:
                outcome = _apply_edits(context.worktree, content)
        # Tokens spent on an unusable answer are spent all the same: the budget must see them.
        outcome.tokens_in, outcome.tokens_out = tokens_in, tokens_out
        outcome.cost = (
            Decimal(str(config.get("price_per_1k_input", 0))) * tokens_in
            + Decimal(str(config.get("price_per_1k_output", 0))) * tokens_out
        ) / 1000
        return outcome


def _post(url: str, body: dict, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST and read the answer within `timeout` overall, not per read, and within the cap."""
    deadline = time.monotonic() + timeout
    with httpx.stream(
        "POST", url, json=body, headers=headers, timeout=timeout, verify=_tls_context()
    ) as response:
        if response.status_code != 200:
            return response.status_code, b""
        received = bytearray()
        for chunk in response.iter_bytes():
            received += chunk
            if len(received) > MAX_RESPONSE_BYTES:
                raise _AnswerTooLarge
            if time.monotonic() > deadline:
                # httpx's timeout is per read: an endpoint sending a byte at a time never trips it.
                raise httpx.ReadTimeout("the answer did not arrive in time")
    return 200, bytes(received)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds; once per worker process is enough.
    return httpx.create_ssl_context()


def _usage(data: Any) -> tuple[int, int]:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int:
    # Endpoints differ: some send null or omit counts; none of that may fail the run.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    return int(min(max(value, 0), MAX_TOKENS))


def _valid_number(value: Any, expected: str) -> bool:
    if isinstance(value, bool):
        return False
    if expected == "a positive integer":
        return isinstance(value, int) and value > 0
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return False
    if not number.is_finite():
        return False
    if expected == "a positive number":
        return number > 0
    return number >= 0 if expected == "a non-negative number" else True


def _fenced_blocks(content: str) -> list[tuple[str, str]]:
    """The ``` blocks of a Markdown answer as (info string, body).

    A block closes only on a line that is just the fence, so a diff whose lines carry
    fences of their own (" ```", "+```python") stays whole.
    """
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for line in content.splitlines(keepends=True):
        if info is None:
            if line.lstrip().startswith(FENCE):
                info, body = line.strip()[len(FENCE) :].strip().lower(), []
        elif line.rstrip() == FENCE:
            blocks.append((info, "".join(body)))
            info = None
        else:
            body.append(line)
    return blocks


def _plan(content: str) -> ExecutionResult:
    fenced = [body for info, body in _fenced_blocks(content) if info in ("json", "")]
    error: json.JSONDecodeError | None = None
    for text in (*fenced, content):
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as exc:
            error = error or exc
            continue
        return ExecutionResult(ok=True, output=content, result={"manifest": manifest})
    return ExecutionResult.failed(f"the model's plan is not JSON: {error}", output=content)


def _apply_edits(worktree: Path, content: str) -> ExecutionResult:
    files = FILE_BLOCK.findall(content)
    # A whole file may itself hold a ```diff example (a README, say): that is not an edit.
    rest = FILE_BLOCK.sub("", content)
    diffs = [body for info, body in _fenced_blocks(rest) if info in ("diff", "patch")]
    if not diffs and not files:
        return ExecutionResult.failed(NO_EDITS, output=content)
    targets = []
    # Every path is checked before anything is touched, so a refusal changes nothing.
    for raw_path, text in files:
        target = _inside(worktree, raw_path.strip())
        if target is None:
            return ExecutionResult.failed(
                f"refused file path outside the repository: {raw_path.strip()!r}", output=content
            )
        targets.append((target, text))
    if diffs:
        # One patch, so that git applies all of it or none (later blocks may build on earlier).
        patch = "".join(block if block.endswith("\n") else block + "\n" for block in diffs)
        try:
            gitops.apply_patch(worktree, patch)
        except gitops.GitError as exc:
            return ExecutionResult.failed(f"the model's diff does not apply: {exc}", output=content)
    for target, text in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            relative = target.relative_to(worktree)
            return ExecutionResult.failed(
                f"cannot write {str(relative)!r}: {exc.strerror}", output=content
            )
    return ExecutionResult(ok=True, output=content)


def _inside(worktree: Path, raw: str) -> Path | None:
    """The file `raw` names in the worktree, or None if it would land outside it or in .git."""
    relative = PurePosixPath(raw)
    parts = relative.parts
    if (
        not parts
        or relative.is_absolute()
        or ".." in parts
        or any(part.lower() == ".git" for part in parts)
    ):
        return None
    target = worktree.joinpath(*parts)
    root = worktree.resolve()
    # A symbolic link in the repository (committed by an earlier run) must not lead out.
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):  # a loop of symbolic links
        return None
    if resolved == root or not resolved.is_relative_to(root):
        return None
    return target
