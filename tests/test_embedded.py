"""The embedded default: the demo seed and the one-command launcher (`manage.py up`)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Membership, Role, Workspace
from orchestration.demo.seed import TEST_COMMAND, demo_seed
from orchestration.models import AgentProfile, Event, EventKind, Project

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = str(Path(sys.executable).parent)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout


def test_seed_demo_is_idempotent(db, tmp_path):
    # given
    first = demo_seed(data_dir=tmp_path)

    # when
    second = demo_seed(data_dir=tmp_path)

    # then
    assert second.password == first.password
    credentials = tmp_path / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert f"password: {first.password}\n" in credentials.read_text()
    user = get_user_model().objects.get(username="demo")
    assert (user.is_staff, user.is_superuser, user.check_password(first.password)) == (
        True,
        True,
        True,
    )
    assert list(Workspace.objects.values_list("slug", "name")) == [("demo", "Demo workspace")]
    assert list(Membership.objects.values_list("user__username", "role")) == [("demo", Role.ADMIN)]
    assert list(
        Project.objects.values_list("slug", "repo_path", "default_branch", "test_command")
    ) == [("textkit", str(tmp_path / "repos" / "textkit"), "main", TEST_COMMAND)]
    assert Event.objects.filter(kind=EventKind.PROJECT_CREATED).count() == 1
    assert list(AgentProfile.objects.order_by("name").values_list("name", "role", "executor")) == [
        ("Devon", "developer", "demo"),
        ("Orion", "pm", "demo"),
        ("Tara", "tester", "demo"),
    ]


def test_seed_demo_keeps_the_login_working_after_the_password_changed(db, tmp_path):
    # given
    info = demo_seed(data_dir=tmp_path)
    user = get_user_model().objects.get(username="demo")
    user.set_password("changed-elsewhere-42")
    user.save()

    # when
    demo_seed(data_dir=tmp_path)

    # then
    user.refresh_from_db()
    assert user.check_password(info.password) is True


def test_seed_demo_creates_a_git_repo_with_one_commit_on_main_whose_tests_pass(db, tmp_path):
    # given
    repo = demo_seed(data_dir=tmp_path).repo_path

    # when
    tests = subprocess.run(
        shlex.split(TEST_COMMAND),
        cwd=repo,
        # Only what a fresh shell has: the repo's tests must not lean on this project's setup.
        env={"PATH": os.pathsep.join([VENV_BIN, os.environ["PATH"]]), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then
    assert git(repo, "branch", "--format=%(refname:short)").splitlines() == ["main"]
    assert git(repo, "log", "--format=%an <%ae>|%cn <%ce>", "main").splitlines() == [
        "CodeMaestro demo <demo@codemaestro.local>|CodeMaestro demo <demo@codemaestro.local>"
    ]
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
    assert (repo / ".codemaestro" / "junit.xml").is_file()
    assert git(repo, "status", "--porcelain") == ""  # test output and caches are ignored


def test_seed_demo_command_prints_the_demo_login(db, tmp_path, settings, capsys):
    # given
    settings.DATA_DIR = tmp_path

    # when
    call_command("seed_demo")

    # then
    password = demo_seed(data_dir=tmp_path).password
    assert f"Log in as demo with password {password} " in capsys.readouterr().out


def test_up_refuses_to_run_when_services_are_configured(tmp_path, settings, monkeypatch):
    # given
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1/codemaestro")
    monkeypatch.delenv("REDIS_URL", raising=False)

    # when
    with pytest.raises(CommandError) as refused:
        call_command("up", port=free_port())

    # then
    assert str(refused.value).startswith(
        "DATABASE_URL is set, but `manage.py up` exists to run the embedded default"
    )
    assert "pass --allow-services" in str(refused.value)
    assert not settings.DATA_DIR.exists()


def test_up_refuses_a_port_that_is_taken(tmp_path, settings, monkeypatch):
    # given
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        # when
        with pytest.raises(CommandError) as refused:
            call_command("up", port=port)

    # then
    assert str(refused.value) == (
        f"Port {port} on 127.0.0.1 is already in use (another CodeMaestro or another "
        f"server?). Stop it, or pick another port: bin/start --port {port + 1}"
    )
    assert not settings.DATA_DIR.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_signal", "exit_code"),
    [(signal.SIGINT, 130), (signal.SIGHUP, 129)],
    ids=["ctrl-c", "terminal-closed"],
)
def test_up_serves_the_demo_with_no_services_and_stops_everything_on_a_signal(
    tmp_path, stop_signal, exit_code
):
    # given
    data_dir, log_path, port = tmp_path / "data", tmp_path / "up.log", free_port()
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environment["CODEMAESTRO_DATA_DIR"] = str(data_dir)
    with log_path.open("w") as log:
        up = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: list[tuple[int, str]] = []
    try:
        url, password = wait_for_banner(up, log_path, timeout=120)
        started = descendants(up.pid)
        assert sorted(filter(None, (role_of(pid) for pid, _ in started))) == [
            "beat",
            "web",
            "worker",
        ]
        assert url == f"http://127.0.0.1:{port}/"

        # when
        with httpx.Client(base_url=url, timeout=20, follow_redirects=True) as client:
            room = log_in(client, password)
            schema = client.get("/api/schema/")
            docs = client.get("/api/docs/")
            htmx = client.get("/static/vendor/htmx.min.js")
        os.killpg(up.pid, stop_signal)  # as a terminal does, to its foreground group
        returncode = up.wait(timeout=15)

        # then
        assert (room.status_code, room.url.path.startswith("/w/")) == (200, True)
        assert "<h2>Demo workspace " in room.text
        assert (schema.status_code, schema.text.startswith("openapi: 3")) == (200, True)
        assert docs.status_code == 200
        assert htmx.status_code == 200  # WhiteNoise serves the collected static files
        assert (data_dir / "codemaestro.sqlite3").is_file()  # SQLite, not PostgreSQL
        assert sorted(p.name for p in (data_dir / "broker").iterdir()) == [
            "control",
            "processed",
            "queue",
        ]
        assert returncode == exit_code
        assert still_running(started) == []
        assert process_group(up.pid) == []
    finally:
        print(log_path.read_text())  # pytest shows it when the test fails
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=10)
        for pid, _ in still_running(started):
            os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_banner(process: subprocess.Popen, log_path: Path, *, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = log_path.read_text()
        url = re.search(r"CodeMaestro is running at (\S+)", log)
        password = re.search(r"password: (\S+)", log)
        if url and password:
            return url.group(1), password.group(1)
        if process.poll() is not None:
            pytest.fail(f"manage.py up exited with {process.returncode}:\n{log}")
        time.sleep(0.2)
    pytest.fail(f"no URL printed within {timeout} s:\n{log_path.read_text()}")


def log_in(client: httpx.Client, password: str) -> httpx.Response:
    form = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return client.post(
        "/login/",
        data={"username": "demo", "password": password, "csrfmiddlewaretoken": token},
    )


def proc_stat(pid: int) -> tuple[str, int, int, str] | None:
    """(state, parent pid, process group, start time) from /proc, or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: split after its end.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2]), fields[19]


def all_processes() -> dict[int, tuple[str, int, int, str]]:
    stats = {
        int(p.name): proc_stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()
    }
    return {pid: stat for pid, stat in stats.items() if stat is not None}


def descendants(root: int) -> list[tuple[int, str]]:
    """Every process below `root`, as (pid, start time) so a reused pid is not mistaken."""
    processes = all_processes()
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, (_, ppid, _, started_at) in processes.items():
            if ppid == parent:
                found.append((pid, started_at))
                frontier.append(pid)
    return found


def still_running(processes: list[tuple[int, str]]) -> list[tuple[int, str]]:
    running = []
    for pid, started_at in processes:
        stat = proc_stat(pid)
        if stat is not None and stat[3] == started_at and stat[0] != "Z":
            running.append((pid, started_at))
    return running


def process_group(pgid: int) -> list[int]:
    return [pid for pid, stat in all_processes().items() if stat[2] == pgid and stat[0] != "Z"]


def role_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    for word, role in ((b"daphne", "web"), (b"worker", "worker"), (b"beat", "beat")):
        if word in argv:
            return role
    return None
