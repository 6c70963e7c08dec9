"""Mode (c): agents claiming over HTTP from the production HTTP server (bin/web).

The server is started exactly as compose.yaml's `web` service starts it: `bin/web`
(granian's WSGI workers) with the production settings. compose puts nginx in front of it
and of daphne's websockets; that proxy is not part of what is measured here.

The agents share this process and this 2-core machine with the server, so their own cost
would count against it: each speaks plain HTTP/1.1 over one kept-alive asyncio connection
(about a tenth of a general-purpose client's CPU per request), and the report shows what
they used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass
from pathlib import Path

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
WEB_COMMAND = ROOT / "bin" / "web"
CLAIM_PATH = "/api/v1/runs/claim/"
OTHER_ROLE = "tester"
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception): ")
REQUEST_TIMEOUT = 30.0
HEALTH_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def production_env(database_url: str, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "codemaestro.settings_production",
        "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        # Loopback speaks plain http; in production TLS ends in front of the proxy.
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

    def pids(self) -> list[int]:
        """The server and its worker processes."""
        return process_tree(self.process.pid)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


@contextmanager
def web_server(workers: int, env: dict[str, str]) -> Iterator[WebServer]:
    """Start bin/web with `workers` processes on a free loopback port, as compose does."""
    port = free_port()
    server_env = {
        **env,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "WEB_WORKERS": str(workers),
        "PYTHON": sys.executable,
    }
    with tempfile.TemporaryDirectory(prefix="bench-web-") as logs:
        log = Path(logs) / "web.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(WEB_COMMAND)],
                cwd=ROOT,
                env=server_env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers stop with it, whatever happens here
            )
        server = WebServer(process=process, port=port, log=log)
        try:
            wait_until_serving(server)
            yield server
        finally:
            stop_server(server)


def wait_until_serving(server: WebServer, timeout: float = 90.0) -> None:
    """Until the API answers: the port opens before the workers have loaded Django."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise RuntimeError(f"bin/web exited with {code}:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
                sock.sendall(HEALTH_REQUEST)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"bin/web did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def stop_server(server: WebServer) -> None:
    group = server.process.pid
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        server.process.wait()


class HttpError(Exception):
    pass


class AgentConnection:
    """One agent's kept-alive HTTP/1.1 connection, reopened if the server closes it."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(head + body)
        return await asyncio.wait_for(self._response(), REQUEST_TIMEOUT)

    async def _response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"not an HTTP response: {head[0]!r}") from None
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0].strip(), 16)
            chunk = await self.reader.readexactly(size + 2)  # with its CRLF
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def agent(connection: AgentConnection, report: Report, start: float) -> None:
    """One agent: claim until 204, stopping at the first error."""
    report["start"] = start
    try:
        while True:
            began = time.perf_counter()
            status, body = await connection.post(CLAIM_PATH, {})
            if status == 204:
                break
            if status != 200:
                report["error"] = f"HTTP {status} {failure_text(body)}".rstrip()
                break
            report["latencies"].append(time.perf_counter() - began)
            report["claimed"].append(json.loads(body)["id"])
    except (OSError, asyncio.IncompleteReadError, TimeoutError, HttpError, ValueError) as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["end"] = time.perf_counter()


def failure_text(body: bytes) -> str:
    # Production error pages are HTML, so only a JSON body is worth showing; the server
    # log's exceptions, collected by http_mode, say why.
    return body[:300].decode(errors="replace") if body.startswith(b"{") else ""


async def warm_up(connection: AgentConnection) -> None:
    """Open the connection and run the whole auth path once, without claiming anything.

    The token works as developer, so asking as tester is refused (403) before any claim.
    """
    status, body = await connection.post(CLAIM_PATH, {"role": OTHER_ROLE})
    if status != 403:
        raise RuntimeError(f"warm-up expected 403, got {status}: {body[:300]!r}")


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent during the timed window, by whom."""

    client: float
    server: float
    machine: float


def cpu_now(server_pids: list[int]) -> CpuUse:
    server = 0.0
    for pid in server_pids:
        with suppress(OSError):  # a worker that died: the log says why
            server += cpu_seconds(pid)
    return CpuUse(client=time.process_time(), server=server, machine=machine_busy_seconds())


async def agents_drain(
    port: int, keys: list[str], server_pids: list[int]
) -> tuple[list[Report], CpuUse]:
    """Run one agent per key; return their reports and the CPU used while they claimed."""
    connections = [AgentConnection(port, key) for key in keys]
    try:
        await asyncio.gather(*(warm_up(connection) for connection in connections))
        reports = [new_report() for _ in connections]
        before, start = cpu_now(server_pids), time.perf_counter()
        await asyncio.gather(
            *(agent(c, r, start) for c, r in zip(connections, reports, strict=True))
        )
        after = cpu_now(server_pids)
        used = CpuUse(*(b - a for a, b in zip(astuple(before), astuple(after), strict=True)))
        return reports, used
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


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
    """(c) Agents with their own tokens claim through the API served by bin/web."""
    from orchestration.models import AgentRun

    logging.getLogger("asyncio").setLevel(logging.WARNING)
    keys = agent_keys(batch, agents)
    env = production_env(database_url, redis_url, web_env or {})
    with web_server(web_processes, env) as server:
        reports, cpu = asyncio.run(agents_drain(server.port, keys, server.pids()))
        server_errors = [f"web: {line}" for line in server.logged_exceptions()]
    # The API names runs by code (its "id" field); the check works on primary keys.
    ids_by_code = {
        str(code): pk
        for code, pk in AgentRun.objects.filter(workspace_id=batch.workspace_id).values_list(
            "code", "pk"
        )
    }
    codes = [code for report in reports for code in report["claimed"]]
    mode = f"c HTTP, bin/web x{web_processes}"
    result = merge_reports(mode, reports, [ids_by_code.get(code, -1) for code in codes])
    result.errors += [f"unknown run code {code}" for code in codes if code not in ids_by_code]
    result.errors += server_errors
    if result.claimed and result.seconds:
        per_claim = 1000 / len(result.claimed)
        result.notes.append(
            f"{mode}: CPU per claim: server {cpu.server * per_claim:.2f} ms, agents' client "
            f"{cpu.client * per_claim:.2f} ms, whole machine {cpu.machine * per_claim:.2f} ms "
            f"({cpu.machine / result.seconds:.2f} cores busy)"
        )
    return result
