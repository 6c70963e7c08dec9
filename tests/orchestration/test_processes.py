from __future__ import annotations

import json
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from orchestration import processes
from orchestration.processes import ProcessError, clean_environment, run_process

# A child that starts a grandchild sleeping for a minute, prints its pid, then sleeps too.
SPAWN_GRANDCHILD = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(grandchild.pid, flush=True)
time.sleep(60)
"""
SLEEP = "import time; time.sleep(60)"
SLEEP_IGNORING_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
)


def python(code: str, *args: str) -> list[str]:
    return ["python", "-c", code, *args]


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


@pytest.mark.parametrize("code", [0, 1, 42])
def test_reports_the_exit_code_and_interleaved_output(tmp_path, code):
    # given
    script = (
        f"import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit({code})"
    )

    # when
    result = run_process(python(script), cwd=tmp_path, env=clean_environment({}), timeout=10)

    # then
    assert result.exit_code == code
    assert result.output == "out\nerr\n"
    assert result.timed_out is False
    assert result.truncated is False
    assert result.output_bytes_total == 8
    assert result.killed_by is None


def test_splits_a_string_command_like_a_shell_without_running_one(tmp_path):
    # when
    result = run_process(
        "python -c 'import sys; print(sys.argv[1:])' 'two words' '$HOME'",
        cwd=tmp_path,
        env=clean_environment({}),
        timeout=10,
    )

    # then
    assert result.output == "['two words', '$HOME']\n"


def test_feeds_stdin_to_the_command(tmp_path):
    # when
    result = run_process(
        python("import sys; print(sys.stdin.read().upper())"),
        cwd=tmp_path,
        env=clean_environment({}),
        timeout=10,
        stdin="briefing",
    )

    # then
    assert result.output == "BRIEFING\n"


def test_timeout_kills_the_whole_process_group_including_the_grandchild(tmp_path):
    # given
    started = time.monotonic()

    # when
    result = run_process(
        python(SPAWN_GRANDCHILD, SLEEP), cwd=tmp_path, env=clean_environment({}), timeout=1
    )

    # then
    grandchild = int(result.output)
    assert result.timed_out is True
    assert result.exit_code is None
    assert result.killed_by == "SIGTERM"
    assert wait_until_gone(grandchild) is True
    assert time.monotonic() - started < 5


def test_timeout_kills_a_grandchild_that_ignores_sigterm(tmp_path):
    # when
    result = run_process(
        python(SPAWN_GRANDCHILD, SLEEP_IGNORING_SIGTERM),
        cwd=tmp_path,
        env=clean_environment({}),
        timeout=1,
        kill_grace=0.5,
    )

    # then
    assert result.timed_out is True
    assert wait_until_gone(int(result.output)) is True


def test_kills_background_processes_left_behind_after_a_normal_exit(tmp_path):
    # when
    result = run_process(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
        cwd=tmp_path,
        env=clean_environment({}),
        timeout=10,
    )

    # then
    assert result.exit_code == 0
    assert result.timed_out is False
    assert wait_until_gone(int(result.output)) is True


def test_caps_huge_output_keeping_head_and_tail_in_bounded_memory(tmp_path):
    # given: 50 MB between two markers
    script = (
        "import sys; out = sys.stdout.buffer; out.write(b'HEAD\\n')\n"
        "for _ in range(50): out.write(b'x' * 1_000_000)\n"
        "out.write(b'\\nTAIL\\n')"
    )
    total = 5 + 50_000_000 + 6
    tracemalloc.start()

    # when
    try:
        result = run_process(
            python(script), cwd=tmp_path, env=clean_environment({}), timeout=60, output_cap=100_000
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then
    head = "HEAD\n" + "x" * 49_995
    tail = "x" * 49_994 + "\nTAIL\n"
    assert result.output == f"{head}\n… [{total - 100_000} bytes omitted] …\n{tail}"
    assert result.truncated is True
    assert result.output_bytes_total == total
    assert result.exit_code == 0
    assert peak < 1_000_000


def test_cuts_capped_output_on_character_boundaries(tmp_path):
    # given: 200,001 bytes of two-byte characters and a newline
    script = "print('é' * 100_000)"

    # when
    result = run_process(
        python(script), cwd=tmp_path, env=clean_environment({}), timeout=10, output_cap=1_000
    )

    # then
    assert result.output == "é" * 250 + "\n… [199002 bytes omitted] …\n" + "é" * 249 + "\n"
    assert "\N{REPLACEMENT CHARACTER}" not in result.output


def test_missing_binary_raises_a_clear_error(tmp_path):
    # when
    with pytest.raises(ProcessError) as error:
        run_process("no-such-agent --help", cwd=tmp_path, env=clean_environment({}), timeout=10)

    # then
    assert str(error.value) == "command not found: no-such-agent"


def test_missing_working_directory_raises_a_clear_error(tmp_path):
    # given
    missing = tmp_path / "gone"

    # when
    with pytest.raises(ProcessError) as error:
        run_process(["true"], cwd=missing, env=clean_environment({}), timeout=10)

    # then
    assert str(error.value) == f"working directory does not exist: {missing}"


def test_reports_a_command_that_deletes_its_own_working_directory(tmp_path):
    # given
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "module.py").write_text("x = 1\n")

    # when
    result = run_process(
        python("import os, shutil; shutil.rmtree(os.getcwd()); print('deleted')"),
        cwd=worktree,
        env=clean_environment({}),
        timeout=10,
    )

    # then
    assert result.exit_code == 0
    assert result.output == "deleted\n"
    assert result.cwd_removed is True
    assert worktree.exists() is False


def test_clean_environment_hides_secrets_of_the_worker_environment(tmp_path, monkeypatch):
    # given
    monkeypatch.setenv("SECRET_KEY", "planted-django-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://admin:planted-password@db/prod")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted")

    # when
    result = run_process(
        python("import json, os; print(json.dumps(dict(os.environ)))"),
        cwd=tmp_path,
        env=clean_environment({}),
        timeout=10,
    )

    # then
    assert sorted(json.loads(result.output)) == ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR"]
    assert "planted" not in result.output


def test_clean_environment_carries_a_granted_secret(tmp_path, monkeypatch):
    # given
    monkeypatch.setenv("OPENAI_API_KEY", "sk-worker-own")

    # when
    result = run_process(
        python("import json, os; print(json.dumps(dict(os.environ)))"),
        cwd=tmp_path,
        env=clean_environment({"OPENAI_API_KEY": "sk-granted"}, home=tmp_path),
        timeout=10,
    )

    # then
    child_env = json.loads(result.output)
    assert child_env["OPENAI_API_KEY"] == "sk-granted"
    assert child_env["HOME"] == str(tmp_path)
    assert child_env["LC_ALL"] == "C.UTF-8"


def test_clean_environment_resolves_python_to_the_current_interpreter(tmp_path):
    # when
    result = run_process(
        python("import sys; print(sys.prefix)"),
        cwd=tmp_path,
        env=clean_environment({}),
        timeout=10,
    )

    # then
    assert result.output == f"{sys.prefix}\n"


def test_unbalanced_quotes_raise_a_clear_error(tmp_path):
    # when
    with pytest.raises(ProcessError) as error:
        run_process("python -c 'print(1)", cwd=tmp_path, env=clean_environment({}), timeout=10)

    # then
    assert str(error.value) == "command cannot be parsed: No closing quotation"


def test_an_interrupted_run_kills_the_command_before_raising(tmp_path, monkeypatch):
    # given: the worker is interrupted while the command runs (a Celery soft time limit)
    grandchildren = []

    def interrupted_pump(process, collector, *, deadline):
        grandchildren.append(int(process.stdout.readline()))
        raise KeyboardInterrupt

    monkeypatch.setattr(processes, "_pump", interrupted_pump)

    # when
    with pytest.raises(KeyboardInterrupt):
        run_process(
            python(SPAWN_GRANDCHILD, SLEEP), cwd=tmp_path, env=clean_environment({}), timeout=30
        )

    # then
    assert wait_until_gone(grandchildren[0]) is True
