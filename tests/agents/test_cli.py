"""`codemaestro-agent` against a live server (daphne on the test database), with small
scripts as the agents: a full run, a patch that does not apply, agents stopped or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gitops
from accounts.services import token_create_for_agent
from orchestration.models import AgentRun, Event, RunStatus, TestRun
from orchestration.services import runs
from tests.agents.conftest import PUNCTUATION_TEST, punctuation_subtask
from tests.agents.servers import PYTHON, free_port, server_env, serving
from tests.agents.test_mcp import tara_done
from tests.cycle.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
AGENT = str(Path(sys.executable).with_name("codemaestro-agent"))

TARA_SCRIPT = f"""
import json, os, pathlib, time
briefing = json.loads(pathlib.Path(os.environ["CODEMAESTRO_BRIEFING_JSON"]).read_text())
assert briefing["subtask"]["key"] == "WC-1", briefing["subtask"]
assert "word_count" in pathlib.Path(os.environ["CODEMAESTRO_BRIEFING_FILE"]).read_text()
time.sleep(float(os.environ.get("AGENT_SLEEP", "0")))
pathlib.Path("tests/test_punctuation.py").write_text({PUNCTUATION_TEST!r})
print("tara wrote a test for", briefing["subtask"]["key"])
"""

# Devon edits word_count; meanwhile someone else publishes a change to the same line.
CONFLICTING_SCRIPT = """
import os, pathlib, subprocess
words = pathlib.Path("textkit/words.py")
words.write_text(words.read_text().replace("len(text.split())", "len(text.split(' '))"))
repo = pathlib.Path(os.environ["SERVER_REPO"])
served = repo / "textkit/words.py"
served.write_text(served.read_text().replace("len(text.split())", "len(text.split(None))"))
env = {**os.environ, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x",
       "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}
subprocess.run(["git", "-C", str(repo), "commit", "-qam", "meanwhile"], check=True, env=env)
"""

SLEEPER_SCRIPT = """
import os, pathlib, time
pathlib.Path(os.environ["MARKER"]).write_text(str(os.getpid()))
time.sleep(60)
"""


@pytest.fixture
def daphne_server(data_dir, tmp_path):
    port = free_port()
    argv = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "codemaestro.asgi:application"]  # fmt: skip
    with serving(argv, server_env(data_dir), port, tmp_path / "daphne.log") as url:
        yield url


def agent_process(url: str, key: str, script: Path, tmp_path: Path, **env: str):
    argv = [AGENT, "--server", url, "--token", key, "--once", "--lease-seconds", "3",
            "--", PYTHON, str(script)]  # fmt: skip
    log = (tmp_path / "agent.log").open("wb")
    return subprocess.Popen(
        argv, cwd=tmp_path, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )


def finish(process: subprocess.Popen, tmp_path: Path, timeout: float = 120) -> tuple[int, str]:
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, (tmp_path / "agent.log").read_text()


def write_script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent_script.py"
    path.write_text(textwrap.dedent(text))
    return path


def agent_key(project, role: str) -> str:
    return token_create_for_agent(workspace=project.workspace, role=role, name=f"{role}-cli")[1]


def test_the_agent_cli_drives_a_script_through_a_full_run(
    external_project, daphne_server, tmp_path
):
    # given: Tara's run is queued; her "agent" is a script that takes 4 s (over a 3 s lease)
    subtask = punctuation_subtask(external_project)
    script = write_script(tmp_path, TARA_SCRIPT)
    # when
    process = agent_process(
        daphne_server, agent_key(external_project, "tester"), script, tmp_path, AGENT_SLEEP="4"
    )
    code, log = finish(process, tmp_path)
    # then: the run succeeded with the script's change, kept alive by heartbeats
    assert code == 0, log
    run = AgentRun.objects.get(subtask=subtask, role="tester")
    assert run.status == RunStatus.SUCCEEDED
    assert "tara wrote a test for WC-1" in run.output
    assert run.heartbeat_at > run.claimed_at
    assert (run.finished_at - run.claimed_at).total_seconds() > 3
    commit = gitops.log(external_project.repo_path, "main", 1)[0]
    assert (commit.sha, commit.run_code) == (run.result["commit"], str(run.code))
    # and the cycle moved on in the server: red check, then Devon's turn
    subtask.refresh_from_db()
    assert (subtask.status, subtask.stage) == ("in_progress", "implementation")
    assert [t.status for t in TestRun.objects.filter(subtask=subtask)] == ["failed"]
    assert len(gitops.worktree_list(external_project.repo_path)) == 1  # cleaned up


def test_a_patch_that_does_not_apply_fails_the_run_with_gits_reason(
    external_project, daphne_server, tmp_path
):
    # given: Devon's run is queued; main moves under his agent while it works
    subtask = punctuation_subtask(external_project)
    tara_done(external_project)
    script = write_script(tmp_path, CONFLICTING_SCRIPT)
    # when
    process = agent_process(
        daphne_server, agent_key(external_project, "developer"), script, tmp_path,
        SERVER_REPO=external_project.repo_path,
    )  # fmt: skip
    code, log = finish(process, tmp_path)
    # then: the run failed with the reason, and the retry policy queued the next attempt
    assert code == 1, log
    assert "the patch was refused" in log
    failed = AgentRun.objects.get(subtask=subtask, role="developer", attempt=1)
    assert failed.status == RunStatus.FAILED
    assert "patch does not apply" in failed.error
    assert failed.result == {"failure_class": "agent"}
    assert AgentRun.objects.filter(
        subtask=subtask, role="developer", attempt=2, status=RunStatus.QUEUED
    ).exists()


def started_sleeper(project, daphne_server, tmp_path) -> tuple[subprocess.Popen, int, AgentRun]:
    punctuation_subtask(project)
    marker = tmp_path / "agent.pid"
    script = write_script(tmp_path, SLEEPER_SCRIPT)
    process = agent_process(
        daphne_server, agent_key(project, "tester"), script, tmp_path, MARKER=str(marker)
    )
    wait_for(lambda: marker.exists() and marker.read_text(), 60)
    run = AgentRun.objects.get(role="tester", project=project)
    assert run.status == RunStatus.RUNNING
    return process, int(marker.read_text()), run


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_agent_stops_its_command_and_releases_the_run(
    signal_number, external_project, daphne_server, tmp_path
):
    # given: the agent's command is working
    process, command_pid, run = started_sleeper(external_project, daphne_server, tmp_path)
    # when: Ctrl-C (or a shutdown)
    process.send_signal(signal_number)
    code, log = finish(process, tmp_path, timeout=30)
    # then: the command is gone, the run is back in the queue, nothing was published
    assert code == 128 + signal_number, log
    wait_for(lambda: not alive(command_pid), 10)
    run.refresh_from_db()
    assert (run.status, run.claimed_by, run.lease_id) == (RunStatus.QUEUED, "", None)
    assert Event.objects.filter(run=run, kind="run.released").count() == 1
    assert len(gitops.log(external_project.repo_path, "main", 10)) == 1
    assert len(gitops.worktree_list(external_project.repo_path)) == 1


def test_a_killed_agents_run_returns_to_the_queue_when_its_lease_expires(
    external_project, daphne_server, tmp_path
):
    # given
    process, command_pid, run = started_sleeper(external_project, daphne_server, tmp_path)
    try:
        # when: kill -9, nothing gets to clean up
        process.kill()
        process.wait(timeout=10)
        time.sleep(3.5)  # the 3 s lease runs out without heartbeats
        reaped = runs.runs_reap_expired()
    finally:
        if alive(command_pid):
            os.killpg(command_pid, signal.SIGKILL)  # its own session outlived the agent
    # then
    assert reaped == 1
    run.refresh_from_db()
    assert (run.status, run.claimed_by) == (RunStatus.QUEUED, "")
    assert Event.objects.filter(run=run, kind="run.lease_expired").count() == 1
