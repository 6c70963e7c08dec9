from __future__ import annotations

import json
import os
import shlex
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

import gitops
from accounts.models import AgentRole
from orchestration.executors.base import FailureClass, RunContext
from orchestration.executors.command import CommandExecutor
from orchestration.models import AgentProfile, AgentRun, RunStep
from tests.gitops.gitrepo import init_repo

SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
BASE_VARIABLES = ("HOME", "LANG", "LC_ALL", "PATH", "TMPDIR")
RUN_VARIABLES = (
    "CODEMAESTRO_ATTEMPT",
    "CODEMAESTRO_BRIEFING_FILE",
    "CODEMAESTRO_RESULT_FILE",
    "CODEMAESTRO_ROLE",
    "CODEMAESTRO_RUN_ID",
    "CODEMAESTRO_STEP",
    "CODEMAESTRO_WORKTREE",
)
BRIEFING = "# Add a greeting\nRésumé: write hello.py ✓\n"


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A detached worktree of a real repository, as the worker checks one out for a run."""
    repo = init_repo(tmp_path / "repo")
    return gitops.worktree_add(repo, "main", tmp_path / "worktrees", "run", detached=True)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def python_command(code: str) -> str:
    return shlex.join(["python", "-c", code])


def profile(**config) -> AgentProfile:
    return AgentProfile(name="devon-cli", executor="command", executor_config=config)


def context_for(
    worktree: Path,
    scratch: Path,
    code: str = "",
    *,
    secrets: dict[str, str] | None = None,
    step: str = RunStep.IMPLEMENTATION,
    timeout_seconds: float = 30,
    **config,
) -> RunContext:
    if code:
        config = {"command": python_command(code), **config}
    role = AgentRole.PM if step == RunStep.PLAN else AgentRole.DEVELOPER
    return RunContext(
        run=AgentRun(role=role, step=step, attempt=1),
        profile=profile(**config),
        worktree=worktree,
        briefing=BRIEFING,
        secrets=secrets or {},
        timeout_seconds=timeout_seconds,
        scratch=scratch,
    )


def is_running(pid: int) -> bool:
    """True while `pid` is a live process; a zombie waiting to be reaped counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def write_result(data) -> str:
    """A command body that writes `data` as JSON to the result file."""
    text = json.dumps(data)
    return f"import os\nopen(os.environ['CODEMAESTRO_RESULT_FILE'], 'w').write({text!r})\n"


# --- a command that works -------------------------------------------------------------


def test_command_that_edits_files_and_exits_zero_succeeds_with_its_output(worktree, scratch):
    # given
    code = "open('hello.py', 'w').write('print(\"hello\")\\n'); print('wrote hello.py')"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is True
    assert result.output == "wrote hello.py\n"
    assert result.error == ""
    assert result.result == {}
    assert (result.tokens_in, result.tokens_out, result.cost) == (0, 0, Decimal(0))
    assert (worktree / "hello.py").read_text() == 'print("hello")\n'
    assert gitops.changed_files(worktree) == ["hello.py"]


def test_command_runs_in_the_worktree_with_the_run_in_its_environment(worktree, scratch):
    # given
    code = (
        "import json, os\n"
        "names = [n for n in os.environ if n.startswith('CODEMAESTRO_')]\n"
        "seen = {n: os.environ[n] for n in names}\n"
        "seen['cwd'] = os.getcwd()\n"
        "open('seen.json', 'w').write(json.dumps(seen))\n"
    )
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is True
    assert json.loads((worktree / "seen.json").read_text()) == {
        "CODEMAESTRO_BRIEFING_FILE": str(scratch / "briefing.md"),
        "CODEMAESTRO_RESULT_FILE": str(scratch / "result.json"),
        "CODEMAESTRO_RUN_ID": str(context.run.code),
        "CODEMAESTRO_ROLE": "developer",
        "CODEMAESTRO_STEP": "implementation",
        "CODEMAESTRO_ATTEMPT": "1",
        "CODEMAESTRO_WORKTREE": str(worktree),
        "cwd": str(worktree),
    }


def test_command_given_as_a_path_relative_to_the_repository_runs_from_the_worktree(
    worktree, scratch
):
    # given: an agent wrapper script that lives in the project's own repository
    script = worktree / "tools" / "agent.sh"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\necho "agent in $(pwd)"\n')
    script.chmod(0o755)
    context = context_for(worktree, scratch, command="tools/agent.sh")

    # when
    problems = CommandExecutor().preflight(context.profile, {})
    result = CommandExecutor().execute(context)

    # then
    assert problems == []
    assert result.ok is True
    assert result.output == f"agent in {worktree}\n"


# --- failures -------------------------------------------------------------------------


def test_nonzero_exit_is_an_agent_failure_naming_the_exit_code(worktree, scratch):
    # given
    code = "import sys; print('tests still red'); sys.exit(3)"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the command failed with exit code 3"
    assert result.output == "tests still red\n"


def test_command_killed_by_a_signal_is_an_agent_failure_naming_the_signal(worktree, scratch):
    # given
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the command failed with signal SIGKILL"


def test_missing_binary_at_run_time_is_an_infrastructure_failure(worktree, scratch):
    # given
    context = context_for(worktree, scratch, command="no-such-agent-binary --go")

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "command not found: no-such-agent-binary"


def test_timeout_is_an_infrastructure_failure_and_the_process_group_is_gone(worktree, scratch):
    # given: a command that starts a grandchild, records both pids, then hangs
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "open(os.path.join(os.environ['HOME'], 'pids'), 'w').write(f'{os.getpid()} {child.pid}')\n"
        "print('working', flush=True)\n"
        "time.sleep(60)\n"
    )
    context = context_for(worktree, scratch, code, timeout=0.5)
    started = time.monotonic()

    # when
    result = CommandExecutor().execute(context)

    # then
    assert time.monotonic() - started < 5
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the command timed out after 0.5s"
    assert result.output == "working\n"
    pids = [int(pid) for pid in (scratch / "pids").read_text().split()]
    assert [wait_until_gone(pid) for pid in pids] == [True, True]


def test_timeout_is_the_shorter_of_the_profiles_and_the_runs(worktree, scratch):
    # given: the profile allows 900 s, the run's budget only 0.3 s
    context = context_for(
        worktree, scratch, "import time; time.sleep(60)", timeout=900, timeout_seconds=0.3
    )

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the command timed out after 0.3s"


@pytest.mark.parametrize(
    ("exit_code", "ok", "error"),
    [(0, True, ""), (4, False, "the command failed with exit code 4")],
)
def test_huge_output_is_capped_and_the_run_still_judged(worktree, scratch, exit_code, ok, error):
    # given: 20 MB of output, then an edit and the exit code
    code = (
        "import sys\n"
        "for letter in (b'a', b'b'):\n"
        "    for _ in range(10):\n"
        "        sys.stdout.buffer.write(letter * 1_000_000)\n"
        "sys.stdout.flush()\n"
        "open('after.txt', 'w').write('still here\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is ok
    assert result.error == error
    assert result.output == "a" * 500_000 + "\n… [19000000 bytes omitted] …\n" + "b" * 500_000
    assert (worktree / "after.txt").read_text() == "still here\n"


def test_output_cap_comes_from_the_profile(worktree, scratch):
    # given
    context = context_for(worktree, scratch, "print('x' * 100, end='')", output_cap=10)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is True
    assert result.output == "xxxxx\n… [90 bytes omitted] …\nxxxxx"


def test_command_that_deletes_its_worktree_is_an_infrastructure_failure(worktree, scratch):
    # given
    code = "import os, shutil; print('cleaning up'); shutil.rmtree(os.getcwd())"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.INFRASTRUCTURE
    assert result.error == "the command deleted its worktree"
    assert result.output == "cleaning up\n"
    assert not worktree.exists()


# --- briefing and environment ---------------------------------------------------------


def test_briefing_file_is_readable_by_the_command_and_outside_the_worktree(worktree, scratch):
    # given
    code = (
        "import os, shutil\n"
        "path = os.environ['CODEMAESTRO_BRIEFING_FILE']\n"
        "shutil.copy(path, 'briefing-seen.md')\n"
        "print(path)\n"
    )
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is True
    briefing_path = Path(result.output.strip())
    assert briefing_path == scratch / "briefing.md"
    assert not briefing_path.resolve().is_relative_to(worktree.resolve())
    assert (worktree / "briefing-seen.md").read_text(encoding="utf-8") == BRIEFING
    assert gitops.changed_files(worktree) == ["briefing-seen.md"]


def test_worker_environment_never_reaches_the_command_but_granted_secrets_do(
    worktree, scratch, monkeypatch
):
    # given
    monkeypatch.setenv("PLANTED_SECRET", "planted-value-0001")
    code = "import json, os; open('env.json', 'w').write(json.dumps(dict(os.environ)))"
    context = context_for(worktree, scratch, code, secrets={"GRANTED_TOKEN": "granted-0002"})

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is True
    env = json.loads((worktree / "env.json").read_text())
    assert "PLANTED_SECRET" not in env
    assert "planted-value-0001" not in env.values()
    assert env["GRANTED_TOKEN"] == "granted-0002"
    assert env["HOME"] == str(scratch)
    assert env["PATH"] == os.pathsep.join([os.path.dirname(sys.executable), *SYSTEM_PATH])
    assert sorted(env) == sorted([*BASE_VARIABLES, *RUN_VARIABLES, "GRANTED_TOKEN"])


def test_granted_secret_values_are_masked_in_the_recorded_output(worktree, scratch):
    # given: a chatty agent that prints its key in a debug line
    code = "import os, sys; print('using key', os.environ['API_KEY']); sys.exit(1)"
    context = context_for(worktree, scratch, code, secrets={"API_KEY": "sk-live-abcdef123456"})

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.output == "using key [secret API_KEY]\n"
    assert "sk-live-abcdef123456" not in result.error


# --- the result file ------------------------------------------------------------------


def test_result_file_gives_the_result_and_the_usage(worktree, scratch):
    # given
    manifest = {"frd": "Greeting", "subtasks": []}
    usage = {"tokens_in": 1200, "tokens_out": 340, "cost": 0.0125}
    context = context_for(
        worktree,
        scratch,
        write_result({"manifest": manifest, "usage": usage}),
        step=RunStep.PLAN,
    )

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is True
    assert result.result == {"manifest": manifest}
    assert (result.tokens_in, result.tokens_out, result.cost) == (1200, 340, Decimal("0.0125"))


def test_result_file_that_is_not_json_is_an_agent_failure(worktree, scratch):
    # given
    code = "import os; open(os.environ['CODEMAESTRO_RESULT_FILE'], 'w').write('done!')"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == (
        "the result file is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    )


@pytest.mark.parametrize("data", [[1, 2], "manifest", 42, None])
def test_result_file_that_is_not_an_object_is_an_agent_failure(worktree, scratch, data):
    # given
    context = context_for(worktree, scratch, write_result(data))

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the result file must hold a JSON object"


@pytest.mark.parametrize(
    "usage",
    [
        {"tokens_in": "many"},
        {"tokens_in": -5},
        {"tokens_out": 2**40},
        {"tokens_in": float("inf")},
        {"tokens_in": True},
        {"cost": "NaN"},
        {"cost": "Infinity"},
        {"cost": -0.5},
        {"cost": 10**7},
        {"cost": [1]},
        [100, 20],
        "100 tokens",
    ],
)
def test_result_file_with_unusable_usage_is_an_agent_failure(worktree, scratch, usage):
    # given
    context = context_for(worktree, scratch, write_result({"usage": usage}))

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == (
        "the result file's usage must hold non-negative numbers "
        "(tokens_in, tokens_out as integers, cost)"
    )
    assert (result.tokens_in, result.tokens_out, result.cost) == (0, 0, Decimal(0))


def test_usage_of_a_failed_command_is_still_recorded(worktree, scratch):
    # given: the agent spent tokens, then gave up
    usage = {"tokens_in": 900, "tokens_out": 100, "cost": "0.02"}
    code = write_result({"usage": usage}) + "raise SystemExit(2)\n"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.error == "the command failed with exit code 2"
    assert (result.tokens_in, result.tokens_out, result.cost) == (900, 100, Decimal("0.02"))


def test_result_file_that_is_a_fifo_fails_instead_of_hanging(worktree, scratch):
    # given: nothing will ever write into the pipe left at the result path
    code = "import os; os.mkfifo(os.environ['CODEMAESTRO_RESULT_FILE'])"
    context = context_for(worktree, scratch, code)
    started = time.monotonic()

    # when
    result = CommandExecutor().execute(context)

    # then
    assert time.monotonic() - started < 5
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the result file must be a regular file"


def test_result_file_that_is_a_symlink_is_not_followed(worktree, scratch, tmp_path):
    # given: a JSON file of the worker's, pointed at from the result path
    private = tmp_path / "worker-credentials.json"
    private.write_text('{"token": "worker-only"}')
    code = f"import os; os.symlink({str(private)!r}, os.environ['CODEMAESTRO_RESULT_FILE'])"
    context = context_for(worktree, scratch, code)

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.error == "the result file must be a regular file"
    assert result.result == {}


def test_result_file_over_the_size_cap_is_an_agent_failure(worktree, scratch, monkeypatch):
    # given
    monkeypatch.setattr("orchestration.executors.command.MAX_RESULT_BYTES", 100)
    context = context_for(worktree, scratch, write_result({"notes": "n" * 200}))

    # when
    result = CommandExecutor().execute(context)

    # then
    assert result.ok is False
    assert result.failure_class == FailureClass.AGENT
    assert result.error == "the result file is larger than 100 bytes"


# --- preflight ------------------------------------------------------------------------


def test_preflight_accepts_a_complete_profile():
    # given
    agent = profile(command="python -m agent --yes", required_secrets=["API_KEY"], timeout=60)

    # when
    problems = CommandExecutor().preflight(agent, {"API_KEY": "sk-1"})

    # then
    assert problems == []


def test_command_configured_as_a_list_runs_without_splitting(worktree, scratch):
    # given: an argument with a space that a command line would have to quote
    argv = ["python", "-c", "import sys; print(sys.argv[1])", "two words"]
    context = context_for(worktree, scratch, command=argv)

    # when
    problems = CommandExecutor().preflight(context.profile, {})
    result = CommandExecutor().execute(context)

    # then
    assert problems == []
    assert result.ok is True
    assert result.output == "two words\n"


@pytest.mark.parametrize(
    "config", [{}, {"command": ""}, {"command": "   "}, {"command": []}, {"command": 7}, None]
)
def test_preflight_refuses_a_profile_without_command(config):
    # given
    agent = AgentProfile(name="devon-cli", executor="command", executor_config=config)

    # when
    problems = CommandExecutor().preflight(agent, {})

    # then
    assert problems == ["profile devon-cli has no command configured"]


def test_preflight_reports_a_missing_binary():
    # when
    problems = CommandExecutor().preflight(profile(command="no-such-agent-binary --go"), {})

    # then
    assert problems == ["command not found: no-such-agent-binary"]


def test_preflight_reports_a_missing_absolute_binary():
    # when
    problems = CommandExecutor().preflight(profile(command="/opt/nowhere/agent"), {})

    # then
    assert problems == ["command not found: /opt/nowhere/agent"]


def test_preflight_reports_an_unparsable_command():
    # when
    problems = CommandExecutor().preflight(profile(command='agent --say "unterminated'), {})

    # then
    assert problems == ["the command cannot be parsed: No closing quotation"]


def test_preflight_reports_each_required_secret_not_granted():
    # given
    agent = profile(command="python", required_secrets=["API_KEY", "GH_TOKEN", "OTHER"])

    # when
    problems = CommandExecutor().preflight(agent, {"OTHER": "x"})

    # then
    assert problems == [
        "secret API_KEY is not granted to profile devon-cli",
        "secret GH_TOKEN is not granted to profile devon-cli",
    ]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"timeout": "soon"}, "executor_config.timeout must be a positive number"),
        ({"timeout": 0}, "executor_config.timeout must be a positive number"),
        ({"output_cap": -1}, "executor_config.output_cap must be a non-negative integer"),
        ({"output_cap": "1MB"}, "executor_config.output_cap must be a non-negative integer"),
        ({"required_secrets": "API_KEY"}, "executor_config.required_secrets must be a list"),
    ],
)
def test_preflight_reports_unusable_limits(config, problem):
    # when
    problems = CommandExecutor().preflight(profile(command="python", **config), {})

    # then
    assert problems == [problem]
