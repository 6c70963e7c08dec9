from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import gitops
from accounts.models import AgentRole
from orchestration.executors.base import FailureClass, RunContext
from orchestration.executors.llm import FORMAT_RULES, LLMExecutor
from orchestration.models import AgentProfile, AgentRun, RunStep
from tests.gitops.gitrepo import commit_file, init_repo

API_KEY = "sk-test-4f9a1c2e7b5d"
PROMPT = "You are Devon, a careful developer."
BRIEFING = "Make greet() say hello.\nRésumé ✓"
GREET = "def greet():\n    return 'hi'\n"
GREET_DIFF = (
    "--- a/greet.py\n"
    "+++ b/greet.py\n"
    "@@ -1,2 +1,2 @@\n"
    " def greet():\n"
    "-    return 'hi'\n"
    "+    return 'hello'\n"
)
MANIFEST = {
    "frd": "Greetings say hello.",
    "subtasks": [
        {
            "key": "greet",
            "title": "Say hello",
            "requirements": {"developer": "return 'hello'", "tester": "assert hello"},
            "depends_on": [],
            "risk": "low",
        }
    ],
}
NO_EDITS = "the model's answer contains no edits (expected ```diff blocks or === FILE: blocks)"


# --- a scripted model endpoint --------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0  # seconds before answering at all
    drip: float = 0.0  # seconds between the single bytes of the body


@dataclass
class Received:
    path: str
    authorization: str | None
    content_type: str | None
    body: dict


@dataclass
class FakeModel:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    def reply(self, status: int = 200, body: bytes | dict = b"", **timing: float) -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        self.replies.append(Reply(status, raw, **timing))

    def answer(self, content: str | None, usage: dict | None = None) -> None:
        self.reply(body=completion(content, usage))


def completion(content, usage: dict | None = None) -> dict:
    message = {"role": "assistant", "content": content}
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


class ModelServer(ThreadingHTTPServer):
    model: FakeModel


class ModelHandler(BaseHTTPRequestHandler):
    server: ModelServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        model = self.server.model
        model.received.append(
            Received(
                path=self.path,
                authorization=self.headers.get("Authorization"),
                content_type=self.headers.get("Content-Type"),
                body=json.loads(raw),
            )
        )
        reply = model.replies.pop(0) if model.replies else Reply(599, b"no reply scripted")
        time.sleep(reply.delay)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.drip:
                for byte in reply.body:
                    self.wfile.write(bytes([byte]))
                    time.sleep(reply.drip)
            else:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the executor stopped waiting, as it should

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="module")
def model_server(request) -> ModelServer:
    """One endpoint for the module: starting one per test would cost more than the tests."""
    server = ModelServer(("127.0.0.1", 0), ModelHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    request.addfinalizer(stop)
    return server


@pytest.fixture
def model(model_server: ModelServer) -> FakeModel:
    """The endpoint with no request received and no reply scripted yet."""
    model_server.model = FakeModel(url=f"http://127.0.0.1:{model_server.server_port}/v1/")
    return model_server.model


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """httpx honours proxy variables; the local endpoint must be reached directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- runs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A real repository holding README.md and greet.py, shared by the module's worktrees."""
    path = init_repo(tmp_path_factory.mktemp("llm") / "repo")
    commit_file(path, "greet.py", GREET, "Add greet")
    return path


@pytest.fixture
def worktree(repo: Path, tmp_path: Path) -> Path:
    """A fresh detached worktree of `repo`, as the worker checks one out for a run."""
    return gitops.worktree_add(repo, "main", tmp_path / "worktrees", "run", detached=True)


def llm_profile(**config) -> AgentProfile:
    return AgentProfile(
        name="devon-llm", executor="llm", executor_config=config, prompt_template=PROMPT
    )


def context_for(
    model: FakeModel,
    worktree: Path,
    *,
    step: str = RunStep.IMPLEMENTATION,
    secrets: dict[str, str] | None = None,
    timeout_seconds: float = 30,
    **config,
) -> RunContext:
    config = {
        "base_url": model.url,
        "model": "gpt-test",
        "api_key_secret": "OPENAI_KEY",
        "timeout": 5,
        **config,
    }
    role = AgentRole.PM if step == RunStep.PLAN else AgentRole.DEVELOPER
    return RunContext(
        run=AgentRun(role=role, step=step, attempt=1),
        profile=llm_profile(**config),
        worktree=worktree,
        briefing=BRIEFING,
        secrets={"OPENAI_KEY": API_KEY} if secrets is None else secrets,
        timeout_seconds=timeout_seconds,
        scratch=worktree.parent / "scratch",
    )


def file_block(path: str, text: str) -> str:
    return f"=== FILE: {path} ===\n{text}=== END FILE ===\n"


def assert_unchanged(worktree: Path) -> None:
    assert gitops.changed_files(worktree) == []
    assert (worktree / "greet.py").read_text() == GREET


# --- the request ----------------------------------------------------------------------


def test_posts_the_briefing_to_chat_completions_with_the_granted_key(model, worktree):
    # given
    model.answer(f"```diff\n{GREET_DIFF}```\n")
    context = context_for(model, worktree, max_tokens=2000, temperature=0.2)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert len(model.received) == 1
    request = model.received[0]
    assert request.path == "/v1/chat/completions"
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.content_type == "application/json"
    assert request.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": f"{PROMPT}\n\n{FORMAT_RULES['edits']}"},
            {"role": "user", "content": BRIEFING},
        ],
        "max_tokens": 2000,
        "temperature": 0.2,
    }


def test_plan_run_asks_for_the_manifest_format(model, worktree):
    # given
    model.answer(json.dumps(MANIFEST))
    context = context_for(model, worktree, step=RunStep.PLAN)

    # when
    LLMExecutor().execute(context)

    # then
    assert model.received[0].body["messages"][0] == {
        "role": "system",
        "content": f"{PROMPT}\n\n{FORMAT_RULES[RunStep.PLAN]}",
    }
    assert model.received[0].body["max_tokens"] == 4096
    assert model.received[0].body["temperature"] == 0.0


def test_key_pasted_with_surrounding_whitespace_is_sent_trimmed(model, worktree):
    # given
    model.answer(f"```diff\n{GREET_DIFF}```\n")
    context = context_for(model, worktree, secrets={"OPENAI_KEY": f"  {API_KEY}\n"})

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert model.received[0].authorization == f"Bearer {API_KEY}"


def test_profile_without_key_secret_sends_no_authorization(model, worktree):
    # given: a local model server that needs no key
    model.answer(f"```diff\n{GREET_DIFF}```\n")
    context = context_for(model, worktree, secrets={}, api_key_secret="")

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert model.received[0].authorization is None


# --- plan answers ---------------------------------------------------------------------


def test_plan_answer_with_plain_json_gives_the_manifest(model, worktree):
    # given
    content = json.dumps(MANIFEST, indent=2)
    model.answer(content)
    context = context_for(model, worktree, step=RunStep.PLAN)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert result.result == {"manifest": MANIFEST}
    assert result.output == content
    assert result.error == ""


def test_plan_answer_in_a_json_fence_gives_the_manifest(model, worktree):
    # given: prose around it, and an unrelated code example before it
    content = (
        "Here is the plan. The endpoint will be used like this:\n"
        "```python\nprint(greet())\n```\n\n"
        f"```json\n{json.dumps(MANIFEST, indent=2)}\n```\n"
        "Let me know if anything is unclear.\n"
    )
    model.answer(content)
    context = context_for(model, worktree, step=RunStep.PLAN)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert result.result == {"manifest": MANIFEST}


def test_plan_answer_that_is_not_json_is_an_agent_failure(model, worktree):
    # given
    model.answer("I would split this into three subtasks.")
    context = context_for(model, worktree, step=RunStep.PLAN)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the model's plan is not JSON: Expecting value: line 1 column 1 (char 0)"
    assert result.output == "I would split this into three subtasks."
    assert result.result == {}


# --- edits: diffs ---------------------------------------------------------------------


def test_diff_block_is_applied_to_the_worktree(model, worktree):
    # given
    content = f"Changing the greeting.\n```diff\n{GREET_DIFF}```\nDone."
    model.answer(content)
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert result.output == content
    assert (worktree / "greet.py").read_text() == "def greet():\n    return 'hello'\n"
    assert gitops.changed_files(worktree) == ["greet.py"]


def test_diff_block_without_final_newline_is_applied(model, worktree):
    # given
    model.answer(f"```patch\n{GREET_DIFF.rstrip()}\n```")
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (worktree / "greet.py").read_text() == "def greet():\n    return 'hello'\n"


def test_diff_that_adds_code_fences_to_a_markdown_file_is_applied_whole(model, worktree):
    # given: the diff's own lines hold ``` fences
    diff = (
        "--- a/README.md\n+++ b/README.md\n@@ -1 +1,5 @@\n hello\n+\n+```python\n+greet()\n+```\n"
    )
    model.answer(f"```diff\n{diff}```\n")
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (worktree / "README.md").read_text() == "hello\n\n```python\ngreet()\n```\n"


def test_later_diff_blocks_apply_on_top_of_earlier_ones(model, worktree):
    # given: the second block edits what the first one produced
    second = (
        "--- a/greet.py\n"
        "+++ b/greet.py\n"
        "@@ -1,2 +1,2 @@\n"
        " def greet():\n"
        "-    return 'hello'\n"
        "+    return 'hello, world'\n"
    )
    model.answer(f"```diff\n{GREET_DIFF}```\nThen:\n```diff\n{second}```\n")
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (worktree / "greet.py").read_text() == "def greet():\n    return 'hello, world'\n"


def test_diff_that_does_not_apply_is_an_agent_failure_and_changes_nothing(model, worktree):
    # given
    stale = GREET_DIFF.replace("-    return 'hi'", "-    return 'hey'")
    content = f"```diff\n{stale}```"
    model.answer(content)
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == (
        "the model's diff does not apply: the patch does not apply; git said: "
        "error: patch failed: greet.py:1\nerror: greet.py: patch does not apply"
    )
    assert result.output == content
    assert_unchanged(worktree)


def test_answer_whose_second_diff_fails_changes_nothing(model, worktree):
    # given: the first block applies, the second does not
    stale = GREET_DIFF.replace("greet.py", "README.md")
    model.answer(f"```diff\n{GREET_DIFF}```\n```diff\n{stale}```\n")
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.error.startswith("the model's diff does not apply: the patch does not apply")
    assert_unchanged(worktree)


@pytest.mark.parametrize("path", ["../x", "/etc/x", ".git/hooks/x", "sub/.git/config"])
def test_diff_with_a_path_escaping_the_repository_is_refused(model, worktree, path):
    # given
    diff = f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+#!/bin/sh\n"
    model.answer(f"```diff\n{diff}```\n")
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == (
        "the model's diff does not apply: the patch does not apply; "
        f"git said: error: invalid path '{path}'"
    )
    assert not (worktree.parent / "x").exists()
    assert_unchanged(worktree)


# --- edits: whole files ---------------------------------------------------------------


def test_whole_file_blocks_are_written(model, worktree):
    # given: one new file in a new directory, one replaced file
    content = (
        "Here you go.\n"
        + file_block("tests/test_greet.py", "from greet import greet\n")
        + file_block("greet.py", "def greet():\n    return 'hello'\n")
    )
    model.answer(content)
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (worktree / "tests" / "test_greet.py").read_text() == "from greet import greet\n"
    assert (worktree / "greet.py").read_text() == "def greet():\n    return 'hello'\n"
    assert gitops.changed_files(worktree) == ["greet.py", "tests/test_greet.py"]


def test_diff_example_inside_a_whole_file_is_not_applied(model, worktree):
    # given: a README that documents a diff
    readme = f"# Greeting\n\n```diff\n{GREET_DIFF}```\n"
    model.answer(file_block("README.md", readme))
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (worktree / "README.md").read_text() == readme
    assert (worktree / "greet.py").read_text() == GREET


@pytest.mark.parametrize(
    "path", ["../x", "/etc/x", ".git/hooks/x", "sub/.git/config", ".GIT/config", "a/../../x"]
)
def test_whole_file_with_a_path_escaping_the_repository_is_refused(model, worktree, path):
    # given: a harmless block first, so refusing must also leave it unwritten
    model.answer(file_block("notes.txt", "fine\n") + file_block(path, "#!/bin/sh\n"))
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == f"refused file path outside the repository: {path!r}"
    assert not (worktree.parent / "x").exists()
    assert not (worktree / "notes.txt").exists()
    assert_unchanged(worktree)


def test_whole_file_through_a_symlink_out_of_the_repository_is_refused(model, worktree, tmp_path):
    # given: a link in the checkout (committed by an earlier run) pointing out of it
    outside = tmp_path / "outside"
    outside.mkdir()
    (worktree / "docs").symlink_to(outside)
    model.answer(file_block("docs/evil.sh", "#!/bin/sh\n"))
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.error == "refused file path outside the repository: 'docs/evil.sh'"
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("path", [".", "./"])
def test_whole_file_naming_the_repository_root_is_refused(model, worktree, path):
    # given
    model.answer(file_block(path, "text\n"))
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.error == f"refused file path outside the repository: {path!r}"
    assert_unchanged(worktree)


def test_whole_file_naming_a_directory_is_an_agent_failure(model, worktree):
    # given
    (worktree / "src").mkdir()
    model.answer(file_block("src", "text\n"))
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "cannot write 'src': Is a directory"


@pytest.mark.parametrize(
    "content",
    [
        "I changed greet.py to say hello.",
        "```python\ndef greet():\n    return 'hello'\n```",
        f"```diff\n{GREET_DIFF}",  # cut off before its closing fence
        "",
        None,
    ],
)
def test_answer_without_edits_is_a_failure_naming_the_expected_format(model, worktree, content):
    # given
    model.answer(content)
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == NO_EDITS
    assert result.output == (content or "")
    assert_unchanged(worktree)


# --- answers that are not chat completions --------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        b"\xff\xfe not utf-8",
        b"[]",
        b"{}",
        json.dumps({"choices": []}).encode(),
        json.dumps({"choices": [{"message": {}}]}).encode(),
        json.dumps({"choices": [{"text": "legacy completion"}]}).encode(),
        json.dumps(completion([{"type": "text", "text": "parts"}])).encode(),
    ],
)
def test_answer_that_is_not_a_chat_completion_is_an_agent_failure(model, worktree, body):
    # given
    model.reply(body=body)
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the model's answer is not a chat completion"
    assert (result.tokens_in, result.tokens_out, result.cost) == (0, 0, Decimal(0))
    assert_unchanged(worktree)


@pytest.mark.parametrize("status", [500, 401, 429])
def test_http_error_is_an_infrastructure_failure_without_body_or_key(model, worktree, status):
    # given: an endpoint that echoes the key in its error body
    model.reply(status, {"error": {"message": f"Incorrect API key provided: {API_KEY}"}})
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == f"the model endpoint answered HTTP {status}"
    assert API_KEY not in result.error + result.output
    assert "Incorrect" not in result.error + result.output
    assert result.output == ""


def test_model_that_does_not_answer_in_time_is_an_infrastructure_failure(model, worktree):
    # given
    model.reply(body=completion("too late"), delay=2)
    context = context_for(model, worktree, timeout=0.3)
    started = time.monotonic()

    # when
    result = LLMExecutor().execute(context)

    # then
    assert time.monotonic() - started < 1.5
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the model did not answer within 0.3s"


def test_run_timeout_caps_the_profile_timeout(model, worktree):
    # given: the profile allows 120 s, the run's budget only 0.3 s
    model.reply(body=completion("too late"), delay=2)
    context = context_for(model, worktree, timeout=120, timeout_seconds=0.3)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the model did not answer within 0.3s"


def test_model_that_drips_its_answer_is_stopped_at_the_timeout(model, worktree):
    # given: every single byte arrives well within the timeout, the whole never does
    model.reply(body=completion(f"```diff\n{GREET_DIFF}```"), drip=0.05)
    context = context_for(model, worktree, timeout=0.5)
    started = time.monotonic()

    # when
    result = LLMExecutor().execute(context)

    # then
    assert time.monotonic() - started < 1.5
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the model did not answer within 0.5s"
    assert_unchanged(worktree)


def test_answer_over_the_size_cap_is_refused(model, worktree, monkeypatch):
    # given
    monkeypatch.setattr("orchestration.executors.llm.MAX_RESPONSE_BYTES", 1000)
    model.answer("x" * 5000)
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the model's answer is larger than 1000 bytes"


def test_unreachable_endpoint_is_an_infrastructure_failure(worktree):
    # given: a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = context_for(FakeModel(url=f"http://127.0.0.1:{port}"), worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "cannot reach the model endpoint: ConnectError"


# --- usage ----------------------------------------------------------------------------


def test_usage_gives_tokens_and_cost_from_the_profile_prices(model, worktree):
    # given
    model.answer(
        f"```diff\n{GREET_DIFF}```",
        usage={"prompt_tokens": 1500, "completion_tokens": 500, "total_tokens": 2000},
    )
    context = context_for(model, worktree, price_per_1k_input="0.003", price_per_1k_output=0.015)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (result.tokens_in, result.tokens_out) == (1500, 500)
    assert result.cost == Decimal("0.012")


def test_usage_without_prices_costs_nothing(model, worktree):
    # given
    model.answer(f"```diff\n{GREET_DIFF}```", usage={"prompt_tokens": 10, "completion_tokens": 5})
    context = context_for(model, worktree)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert (result.tokens_in, result.tokens_out, result.cost) == (10, 5, Decimal(0))


def test_usage_is_recorded_when_the_answer_is_unusable(model, worktree):
    # given: the tokens were spent on an answer with no message in it
    body = {"choices": [{"finish_reason": "length"}], "usage": {"prompt_tokens": 800}}
    body["usage"]["completion_tokens"] = 4096
    model.reply(body=body)
    context = context_for(model, worktree, price_per_1k_input=1, price_per_1k_output=2)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.error == "the model's answer is not a chat completion"
    assert (result.tokens_in, result.tokens_out) == (800, 4096)
    assert result.cost == Decimal("8.992")


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": None, "completion_tokens": None},
        {"prompt_tokens": "many", "completion_tokens": -3},
        "2000 tokens",
        [],
    ],
)
def test_usage_that_is_not_counts_counts_nothing(model, worktree, usage):
    # given
    model.answer(f"```diff\n{GREET_DIFF}```", usage=usage)
    context = context_for(model, worktree, price_per_1k_input=1)

    # when
    result = LLMExecutor().execute(context)

    # then
    assert result.ok is True
    assert (result.tokens_in, result.tokens_out, result.cost) == (0, 0, Decimal(0))


# --- preflight ------------------------------------------------------------------------


def test_preflight_accepts_a_complete_profile():
    # given
    profile = llm_profile(
        base_url="https://api.example.com/v1",
        model="gpt-test",
        api_key_secret="OPENAI_KEY",
        timeout=60,
        max_tokens=8000,
        temperature=0.2,
        price_per_1k_input="0.003",
        price_per_1k_output=0.015,
    )

    # when
    problems = LLMExecutor().preflight(profile, {"OPENAI_KEY": API_KEY})

    # then
    assert problems == []


@pytest.mark.parametrize("base_url", ["", "ftp://models.example.com", "localhost:8000", None])
def test_preflight_refuses_a_base_url_that_is_not_http(base_url):
    # given
    profile = llm_profile(base_url=base_url, model="gpt-test")

    # when
    problems = LLMExecutor().preflight(profile, {})

    # then
    assert problems == ["executor_config.base_url must be an http(s) URL"]


def test_preflight_requires_a_model():
    # when
    problems = LLMExecutor().preflight(llm_profile(base_url="http://127.0.0.1:1/v1"), {})

    # then
    assert problems == ["executor_config.model is required"]


def test_preflight_reports_a_key_secret_not_granted():
    # given
    profile = llm_profile(base_url="https://x.test", model="m", api_key_secret="OPENAI_KEY")

    # when
    problems = LLMExecutor().preflight(profile, {"OTHER_KEY": "k"})

    # then
    assert problems == ["secret OPENAI_KEY is not granted to profile devon-llm"]


def test_preflight_reports_every_problem_of_an_empty_profile():
    # given
    profile = AgentProfile(name="devon-llm", executor="llm", executor_config=None)

    # when
    problems = LLMExecutor().preflight(profile, {})

    # then
    assert problems == [
        "executor_config.base_url must be an http(s) URL",
        "executor_config.model is required",
    ]


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("timeout", "soon", "a positive number"),
        ("timeout", 0, "a positive number"),
        ("max_tokens", 0, "a positive integer"),
        ("max_tokens", "4k", "a positive integer"),
        ("temperature", "warm", "a number"),
        ("price_per_1k_input", -1, "a non-negative number"),
        ("price_per_1k_output", "free", "a non-negative number"),
        ("price_per_1k_output", "NaN", "a non-negative number"),
    ],
)
def test_preflight_reports_unusable_numbers(setting, value, expected):
    # given
    profile = llm_profile(base_url="https://x.test", model="m", **{setting: value})

    # when
    problems = LLMExecutor().preflight(profile, {})

    # then
    assert problems == [f"executor_config.{setting} must be {expected}"]
