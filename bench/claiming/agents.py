"""Mode (c): agents claiming over HTTP from daphne processes run with production settings."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

import httpx

from bench.claiming.claimers import (
    Batch,
    ModeResult,
    Report,
    cpu_seconds,
    machine_busy_seconds,
    merge_reports,
    new_report,
)

ROOT = Path(__file__).resolve().parents[2]
CLAIM_PATH = "/api/v1/runs/claim/"
OTHER_ROLE = "tester"
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception): ")


def production_env(database_url: str, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "codemaestro.settings_production",
        "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        # Loopback speaks plain http; in production TLS ends in front of daphne.
        "SECURE_SSL_REDIRECT": "false",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class WebServer:
    process: subprocess.Popen
    port: int
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def logged_exceptions(self) -> list[str]:
        """The final line of every traceback in the log, e.g. `OperationalError: ...`."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if EXCEPTION_LINE.match(line)]


@contextmanager
def daphne_servers(count: int, env: dict[str, str]) -> Iterator[list[WebServer]]:
    """Start `count` daphne processes, one port each, as production's `web` command does.

    Scaling the web service means more processes behind a balancer; the agents are spread
    over the ports round-robin, as a balancer would spread 16 long-lived connections.
    """
    daphne = Path(sys.executable).with_name("daphne")
    with tempfile.TemporaryDirectory(prefix="bench-daphne-") as logs, ExitStack() as stack:
        servers: list[WebServer] = []
        stack.callback(stop_servers, servers)
        for index in range(count):
            port, log = free_port(), Path(logs) / f"daphne-{index}.log"
            process = subprocess.Popen(
                [str(daphne), "-b", "127.0.0.1", "-p", str(port), "codemaestro.asgi:application"],
                cwd=ROOT,
                env=env,
                # daphne's access log goes to stdout, as a container's log would take it.
                stdout=stack.enter_context(log.open("wb")),
                stderr=subprocess.STDOUT,
            )
            servers.append(WebServer(process=process, port=port, log=log))
        for server in servers:
            wait_until_serving(server)
        yield servers


def wait_until_serving(server: WebServer, timeout: float = 60.0) -> None:
    # daphne imports the application before it listens, so a connection means Django is up.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise RuntimeError(f"daphne exited with {code}:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"daphne did not listen within {timeout:.0f} s:\n{server.log_tail()}")


def stop_servers(servers: list[WebServer]) -> None:
    for server in servers:
        server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


async def agent(client: httpx.AsyncClient, report: Report, start: float) -> None:
    """One agent: claim until 204, on its own connection, stopping at the first error."""
    report["start"] = start
    try:
        while True:
            began = time.perf_counter()
            response = await client.post(CLAIM_PATH, json={})
            if response.status_code == 204:
                break
            if response.status_code != 200:
                report["error"] = failure(response)
                break
            report["latencies"].append(time.perf_counter() - began)
            report["claimed"].append(response.json()["id"])
    except httpx.HTTPError as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["end"] = time.perf_counter()


def failure(response: httpx.Response) -> str:
    # Production error pages are HTML, so only a JSON body is worth showing; the daphne
    # log's exceptions, collected by http_mode, say why.
    is_json = "json" in response.headers.get("content-type", "")
    return f"HTTP {response.status_code} {response.text[:300] if is_json else ''}".rstrip()


async def warm_up(client: httpx.AsyncClient) -> None:
    """Open the connection and run the whole auth path once, without claiming anything.

    The token works as developer, so asking as tester is refused (403) before any claim.
    """
    response = await client.post(CLAIM_PATH, json={"role": OTHER_ROLE})
    if response.status_code != 403:
        raise RuntimeError(f"warm-up expected 403, got {response.status_code}: {response.text}")


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent during the timed window, by whom."""

    client: float
    servers: float
    machine: float


def cpu_now(server_pids: list[int]) -> CpuUse:
    return CpuUse(
        client=time.process_time(),
        servers=sum(map(cpu_seconds, server_pids)),
        machine=machine_busy_seconds(),
    )


async def agents_drain(
    ports: list[int], keys: list[str], server_pids: list[int]
) -> tuple[list[Report], CpuUse]:
    """Run one agent per key, spread over the ports; return their reports and CPU used."""
    clients = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports[index % len(ports)]}",
            headers={"Authorization": f"Bearer {key}"},
            # One connection per agent, kept alive, as a real agent process would hold it.
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=30.0,
        )
        for index, key in enumerate(keys)
    ]
    try:
        await asyncio.gather(*(warm_up(client) for client in clients))
        reports = [new_report() for _ in clients]
        before, start = cpu_now(server_pids), time.perf_counter()
        await asyncio.gather(*(agent(c, r, start) for c, r in zip(clients, reports, strict=True)))
        after = cpu_now(server_pids)
        used = CpuUse(*(b - a for a, b in zip(astuple(before), astuple(after), strict=True)))
        return reports, used
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def agent_keys(batch: Batch, count: int) -> list[str]:
    """One agent token per agent, made the way the product makes them."""
    from accounts.models import Workspace
    from accounts.services import token_create_for_agent

    workspace = Workspace.objects.get(pk=batch.workspace_id)
    return [
        token_create_for_agent(workspace=workspace, role=batch.role, name=f"bench-agent-{i}")[1]
        for i in range(count)
    ]


def http_mode(
    *,
    database_url: str,
    redis_url: str,
    batch: Batch,
    agents: int = 16,
    web_processes: int = 2,
    web_env: dict[str, str] | None = None,
) -> ModeResult:
    """(c) Agents with their own tokens claim through the API served by daphne."""
    from orchestration.models import AgentRun

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    keys = agent_keys(batch, agents)
    with daphne_servers(
        web_processes, production_env(database_url, redis_url, web_env or {})
    ) as servers:
        ports, pids = [s.port for s in servers], [s.process.pid for s in servers]
        reports, cpu = asyncio.run(agents_drain(ports, keys, pids))
        server_errors = [f"daphne: {line}" for s in servers for line in s.logged_exceptions()]
    # The API names runs by code (its "id" field); the check works on primary keys.
    ids_by_code = {
        str(code): pk
        for code, pk in AgentRun.objects.filter(workspace_id=batch.workspace_id).values_list(
            "code", "pk"
        )
    }
    codes = [code for report in reports for code in report["claimed"]]
    mode = f"c HTTP, {web_processes} daphne"
    result = merge_reports(mode, reports, [ids_by_code.get(code, -1) for code in codes])
    result.errors += [f"unknown run code {code}" for code in codes if code not in ids_by_code]
    result.errors += server_errors
    if result.claimed and result.seconds:
        per_claim = 1000 / len(result.claimed)
        result.notes.append(
            f"{mode}: CPU per claim: daphne {cpu.servers * per_claim:.2f} ms, agents' client "
            f"{cpu.client * per_claim:.2f} ms, whole machine {cpu.machine * per_claim:.2f} ms "
            f"({cpu.machine / result.seconds:.2f} cores busy)"
        )
    return result
