"""`codemaestro-agent`: any command-line coding agent as an external CodeMaestro executor.

    codemaestro-agent --server http://127.0.0.1:8000 --token cm_... --once -- my-agent --flag

For each run it claims: writes the briefing to a file ($CODEMAESTRO_BRIEFING_FILE, JSON at
$CODEMAESTRO_BRIEFING_JSON), checks out a worktree of the run's branch from a local clone,
runs the command there while a thread keeps the lease alive, then submits what changed as
a patch and reports the result. Ctrl-C (or SIGTERM) stops the command and gives the run
back to the queue. A plan run's command writes its manifest to $CODEMAESTRO_RESULT_FILE.

Talks only HTTP to the server (the REST API); needs git and a local clone (--repo, or the
project's repository path when the server is on the same machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import gitops

OUTPUT_TAIL_BYTES = 64 * 1024
KILL_GRACE_SECONDS = 5.0
EXIT_FAILED = 1
EXIT_USAGE = 2


class RunStopped(Exception):
    """The run must stop: interrupted here, or the lease was lost on the server."""


@dataclass
class Stop:
    """Why the current run must stop, set from signal handlers and the heartbeat thread."""

    signal_number: int | None = None
    lease_lost: str = ""
    event: threading.Event = field(default_factory=threading.Event)

    def interrupt(self, number: int) -> None:
        self.signal_number = number
        self.event.set()

    def lose_lease(self, detail: str) -> None:
        self.lease_lost = detail
        self.event.set()


class Api:
    """The few REST calls an agent needs, with the token on every request."""

    def __init__(self, server: str, token: str, timeout: float = 60.0) -> None:
        self.client = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def claim(self, role: str | None, lease_seconds: int) -> dict | None:
        body: dict[str, Any] = {"lease_seconds": lease_seconds}
        if role:
            body["role"] = role
        response = self._check(self.client.post("/api/agent/runs/claim", json=body))
        return None if response.status_code == 204 else response.json()

    def briefing(self, run: dict) -> dict:
        if run.get("subtask"):
            return self._check(self.client.get(f"/api/agent/runs/{run['id']}/briefing")).json()
        # A plan run has no subtask: its briefing is the text stored on the run.
        detail = self._check(self.client.get(f"/api/v1/runs/{run['id']}/")).json()
        return {"run": {"id": run["id"], "step": run["step"]}, "text": detail["briefing"]}

    def heartbeat(self, run: dict, lease_seconds: int) -> httpx.Response:
        return self.client.post(
            f"/api/agent/runs/{run['id']}/heartbeat",
            json={"lease_id": run["lease_id"], "lease_seconds": lease_seconds},
        )

    def patch(self, run: dict, patch: str) -> httpx.Response:
        return self.client.post(
            f"/api/agent/runs/{run['id']}/patch",
            json={"lease_id": run["lease_id"], "patch": patch},
        )

    def result(self, run: dict, **fields: Any) -> dict:
        response = self.client.post(
            f"/api/agent/runs/{run['id']}/result", json={"lease_id": run["lease_id"], **fields}
        )
        return self._check(response).json()

    def release(self, run: dict, reason: str) -> None:
        self.client.post(
            f"/api/agent/runs/{run['id']}/release",
            json={"lease_id": run["lease_id"], "reason": reason},
        )

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise ApiError(response)
        return response


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        super().__init__(f"HTTP {response.status_code}: {detail}")
        self.status_code = response.status_code
        self.detail = str(detail)


class Heartbeat(threading.Thread):
    """Extends the lease every `interval` seconds; a lost lease stops the run."""

    def __init__(self, api: Api, run: dict, lease_seconds: int, stop: Stop) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.api, self.run_data, self.lease_seconds, self.stop = api, run, lease_seconds, stop
        self.interval = max(lease_seconds / 3, 0.5)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                response = self.api.heartbeat(self.run_data, self.lease_seconds)
            except httpx.HTTPError as exc:  # the next beat may get through
                log(f"heartbeat failed: {exc}")
                continue
            if response.status_code == 409:
                self.stop.lose_lease(response.json().get("detail", "lease lost"))
                return


def log(message: str) -> None:
    print(f"codemaestro-agent: {message}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    exit_code: int | None
    output: str


def run_command(
    command: list[str], cwd: Path, env: dict[str, str], stop: Stop, timeout: float | None
) -> Outcome:
    """Run the agent in its own process group; stop the whole group when told to."""
    log_path = Path(env["CODEMAESTRO_SCRATCH"]) / "output.log"
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = False
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        while process.poll() is None:
            timed_out = deadline is not None and time.monotonic() > deadline
            if stop.event.wait(0.1) or timed_out:
                _stop_group(process)
                break
    with log_path.open("rb") as output:
        output.seek(max(log_path.stat().st_size - OUTPUT_TAIL_BYTES, 0))
        tail = output.read().decode("utf-8", errors="replace")
    if timed_out:
        return Outcome(exit_code=None, output=f"{tail}\n[the command timed out after {timeout:g}s]")
    return Outcome(exit_code=process.returncode, output=tail)


def _stop_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Worktree:
    repo: Path
    path: Path
    base: str


def prepare_worktree(repo: Path, run: dict, scratch: Path) -> Worktree:
    """A detached worktree of the run's branch (or the default branch if it is not here)."""
    base = _resolve_branch(repo, run["branch"]) or _resolve_branch(repo, run["default_branch"])
    if base is None:
        raise gitops.GitError(f"neither {run['branch']} nor {run['default_branch']} in {repo}")
    path = gitops.worktree_add(repo, base, scratch, "work", detached=True)
    return Worktree(repo=repo, path=path, base=base)


def _resolve_branch(repo: Path, branch: str) -> str | None:
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        result = gitops.run_git(
            repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok_codes=(0, 1)
        )
        if result.returncode == 0:
            return result.stdout.strip()
    return None


def diff_of(worktree: Worktree) -> str:
    """Everything the agent changed, new files included, as one applicable patch."""
    gitops.run_git(worktree.path, "add", "--all")
    return gitops.run_git(
        worktree.path, "diff", "--cached", "--binary", "--no-color", "--no-ext-diff",
        "--src-prefix=a/", "--dst-prefix=b/", worktree.base,
    ).stdout  # fmt: skip


def render_markdown(briefing: dict) -> str:
    """The briefing as a document a command-line agent reads well."""
    if "text" in briefing:
        return briefing["text"]
    subtask = briefing["subtask"]
    parts = [
        f"# {subtask['key']}: {subtask['title']}",
        briefing.get("instructions", ""),
        subtask.get("description", ""),
        f"## Requirements for the developer\n{briefing['requirements']['developer']}",
        f"## Requirements for the tester\n{briefing['requirements']['tester']}",
    ]
    retry = briefing.get("retry")
    if retry:
        parts.append("## Previous failure\n" + json.dumps(retry, indent=2, ensure_ascii=False))
    for question in briefing.get("openQuestions", []):
        answer = question.get("answer") or "(not answered yet)"
        parts.append(f"## Question: {question['text']}\nAnswer: {answer}")
    for comment in briefing.get("reviewComments", []):
        parts.append(f"## Review comment on {comment['path']}:{comment['line']}\n{comment['body']}")
    for item in briefing.get("relevantFiles", []):
        if "path" in item:
            parts.append(
                f"## {item['path']} ({', '.join(item['why'])})\n```\n{item['snippet']}\n```"
            )
    return "\n\n".join(part for part in parts if part)


def _usage(result_file: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The result file's object without its usage, and the usage as result fields."""
    if not result_file.is_file():
        return {}, {}
    data = json.loads(result_file.read_text(encoding="utf-8") or "{}")
    usage = data.pop("usage", None) or {}
    fields = {key: usage[key] for key in ("tokens_in", "tokens_out", "cost") if key in usage}
    return data, fields


class Agent:
    def __init__(self, args: argparse.Namespace, api: Api, stop: Stop) -> None:
        self.args, self.api, self.stop = args, api, stop

    def work_on(self, run: dict) -> int:
        """One claimed run, start to finish; returns the process exit code for it."""
        log(f"claimed {run['step']} run {run['id']} (attempt {run['attempt']}) on {run['branch']}")
        scratch = Path(tempfile.mkdtemp(prefix="codemaestro-agent-"))
        beat = Heartbeat(self.api, run, self.args.lease_seconds, self.stop)
        beat.start()
        worktree = None
        try:
            briefing = self.api.briefing(run)
            self._check_stop()
            worktree = prepare_worktree(self._repo(run), run, scratch)
            outcome = run_command(
                self.args.command, worktree.path, self._env(run, briefing, scratch, worktree),
                self.stop, self.args.timeout,
            )  # fmt: skip
            self._check_stop()
            return self._report(run, worktree, outcome, scratch / "result.json")
        except RunStopped:
            return self._stopped(run)
        except (gitops.GitError, OSError) as exc:
            return self._fail(run, f"codemaestro-agent: {exc}", "infrastructure")
        finally:
            beat.done.set()
            if worktree is not None:
                with contextlib.suppress(gitops.GitError):
                    gitops.worktree_remove(worktree.repo, worktree.path)
            shutil.rmtree(scratch, ignore_errors=True)

    def _check_stop(self) -> None:
        if self.stop.event.is_set():
            raise RunStopped()

    def _repo(self, run: dict) -> Path:
        repo = self.args.repo or run.get("repo_path")
        if not repo:
            raise gitops.GitError("no local clone: pass --repo PATH")
        return Path(repo)

    def _env(self, run: dict, briefing: dict, scratch: Path, worktree: Worktree) -> dict:
        (scratch / "briefing.json").write_text(json.dumps(briefing, indent=2), encoding="utf-8")
        (scratch / "briefing.md").write_text(render_markdown(briefing), encoding="utf-8")
        return {
            **os.environ,
            "CODEMAESTRO_BRIEFING_FILE": str(scratch / "briefing.md"),
            "CODEMAESTRO_BRIEFING_JSON": str(scratch / "briefing.json"),
            "CODEMAESTRO_RESULT_FILE": str(scratch / "result.json"),
            "CODEMAESTRO_SCRATCH": str(scratch),
            "CODEMAESTRO_RUN_ID": run["id"],
            "CODEMAESTRO_ROLE": run["role"],
            "CODEMAESTRO_STEP": run["step"],
            "CODEMAESTRO_ATTEMPT": str(run["attempt"]),
            "CODEMAESTRO_WORKTREE": str(worktree.path),
            "CODEMAESTRO_BASE": worktree.base,
        }

    def _report(self, run: dict, worktree: Worktree, outcome: Outcome, result_file: Path) -> int:
        if outcome.exit_code != 0:
            how = "timed out" if outcome.exit_code is None else f"exit code {outcome.exit_code}"
            return self._fail(run, f"the command failed ({how})", "agent", outcome.output)
        try:
            result, usage = _usage(result_file)
        except (ValueError, AttributeError) as exc:
            return self._fail(run, f"the result file is not valid: {exc}", "agent", outcome.output)
        if run["step"] != "plan":
            patch = diff_of(worktree)
            if not patch.strip():
                return self._fail(run, "the agent changed no file", "agent", outcome.output)
            response = self.api.patch(run, patch)
            if response.status_code == 409:
                raise RunStopped()  # the lease is gone: nothing left to report
            if response.status_code != 201:
                reason = ApiError(response).detail
                log(f"the patch was refused: {reason}")
                return self._fail(run, f"the patch was refused: {reason}", "agent", outcome.output)
        finished = self.api.result(run, success=True, output=outcome.output, result=result, **usage)
        log(f"run {run['id']} {finished['status']}")
        return 0 if finished["status"] == "succeeded" else EXIT_FAILED

    def _fail(self, run: dict, error: str, failure_class: str, output: str = "") -> int:
        log(error)
        with contextlib.suppress(ApiError, httpx.HTTPError):
            self.api.result(
                run, success=False, error=error, failure_class=failure_class, output=output
            )
        return EXIT_FAILED

    def _stopped(self, run: dict) -> int:
        if self.stop.lease_lost:
            log(f"stopped: {self.stop.lease_lost}")
            return EXIT_FAILED
        log(f"interrupted: releasing run {run['id']}")
        with contextlib.suppress(httpx.HTTPError):
            self.api.release(run, "released by the agent (interrupted)")
        return 128 + (self.stop.signal_number or signal.SIGINT)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="codemaestro-agent", description=__doc__.split("\n")[0],
        epilog="Everything after -- is the agent's command line.",
    )  # fmt: skip
    parser.add_argument("--server", default=os.environ.get("CODEMAESTRO_URL"))
    parser.add_argument("--token", default=os.environ.get("CODEMAESTRO_TOKEN"))
    parser.add_argument("--role", help="role to claim for (an agent token's own by default)")
    parser.add_argument("--repo", help="local clone of the project (default: its path)")
    parser.add_argument("--once", action="store_true", help="at most one run, then exit")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between claims")
    parser.add_argument("--lease-seconds", type=int, default=120)
    parser.add_argument("--timeout", type=float, help="seconds the command may run")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the agent's command after --")
    if not args.server or not args.token:
        parser.error("--server and --token (or CODEMAESTRO_URL and CODEMAESTRO_TOKEN) are needed")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api = Api(args.server, args.token)
    stop = Stop()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda n, _frame: stop.interrupt(n))
    while not stop.event.is_set():
        try:
            run = api.claim(args.role, args.lease_seconds)
        except (ApiError, httpx.HTTPError) as exc:
            log(f"cannot claim: {exc}")
            return EXIT_FAILED
        if run is None:
            if args.once:
                log("no work")
                return 0
            stop.event.wait(args.poll)
            continue
        code = Agent(args, api, stop).work_on(run)
        if args.once or stop.signal_number is not None:
            return code
        stop.lease_lost = ""
        stop.event.clear()
    return 128 + (stop.signal_number or signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
