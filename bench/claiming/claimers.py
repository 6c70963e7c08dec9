"""Claimers in processes, and what every claim benchmark mode shares.

(a) a bare `FOR UPDATE SKIP LOCKED` claim loop with psycopg, the floor;
(b) orchestration.services.runs.run_claim, each process with its own Django.
Also: queueing a batch of runs (Django, in the calling process), and checking afterwards
from the database and the claimers' records that every run was claimed exactly once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import statistics
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import psycopg

ROLE = "developer"
# The raw SQL floor runs without Django, so it spells the states out; the check afterwards
# reads them back through RunStatus, so a renamed state would fail loudly rather than pass.
QUEUED, RUNNING = "queued", "running"
LEASE = timedelta(minutes=5)
START_TIMEOUT = 120.0  # spawning 4 Djangos on a busy 2-core box takes a few seconds
DRAIN_TIMEOUT = 900.0

SELECT_NEXT = """
    SELECT id FROM orchestration_agentrun
    WHERE workspace_id = %s AND role = %s AND status = %s AND available_at <= now()
    ORDER BY available_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""
TAKE = """
    UPDATE orchestration_agentrun
    SET status = %s, lease_id = %s, lease_expires_at = now() + %s, claimed_by = %s,
        claimed_at = now(), heartbeat_at = now(), claim_count = claim_count + 1
    WHERE id = %s
"""


@dataclass(frozen=True)
class Batch:
    """The queued runs one mode must drain: all of one role, in a workspace of their own."""

    workspace_id: int
    role: str
    run_ids: frozenset[int]


class Report(TypedDict):
    """What one claimer (process or agent) saw; a plain dict so it pickles from any process."""

    claimed: list[Any]  # run ids, or run codes for HTTP agents
    latencies: list[float]  # seconds per successful claim
    start: float
    end: float
    cpu: float  # CPU seconds of the claimer process while draining (a and b only)
    db_cpu: float  # CPU seconds of its PostgreSQL backend meanwhile (a and b only)
    error: str | None


def new_report() -> Report:
    return {
        "claimed": [],
        "latencies": [],
        "start": 0.0,
        "end": 0.0,
        "cpu": 0.0,
        "db_cpu": 0.0,
        "error": None,
    }


@dataclass
class ModeResult:
    """One mode's run: every claim the clients recorded, and the check's verdict on them."""

    mode: str
    workers: int
    claimed: list[int]  # run ids, one entry per claim received
    latencies: list[float]  # seconds
    seconds: float
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duplicates: int = 0
    losses: int = 0

    @property
    def rate(self) -> float:
        return len(self.claimed) / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, pct: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[pct - 1] * 1000


def merge_reports(mode: str, reports: list[Report], claimed: list[int]) -> ModeResult:
    """One result from many claimers, timed from the first start to the last 'no work'."""
    started = [r["start"] for r in reports if r["start"]]
    ended = [r["end"] for r in reports if r["end"]]
    return ModeResult(
        mode=mode,
        workers=len(reports),
        claimed=claimed,
        latencies=[latency for r in reports for latency in r["latencies"]],
        seconds=max(ended) - min(started) if started and ended else 0.0,
        errors=[r["error"] for r in reports if r["error"]],
    )


# --- Setup and the check afterwards (Django, in the calling process) ------------------------


def database_url_for(db: dict[str, Any]) -> str:
    """A postgres:// URL for a Django DATABASES entry, to hand to processes started here.

    Tests pass the *test* database this way (STACK.md trap 6); OPTIONS are not carried over.
    """
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db.get("HOST") or "", safe="")  # a socket directory needs its slashes quoted
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(str(db['NAME']), safe='')}"


def queue_runs(*, count: int, label: str) -> Batch:
    """Queue `count` runs in a new workspace; bulk_create because setup is not what we time."""
    from accounts.services import workspace_create
    from orchestration.models import AgentRun, RunStep
    from orchestration.services import work

    suffix = uuid.uuid4().hex[:8]
    workspace = workspace_create(name=f"Bench {label} {suffix}", slug=f"bench-{label}-{suffix}")
    project = work.project_create(workspace=workspace, name="Claim bench", actor="bench")
    subtask = work.subtask_create(project=project, key="BENCH-1", title="Claims", actor="bench")
    runs = AgentRun.objects.bulk_create(
        [
            AgentRun(
                workspace=workspace,
                project=project,
                subtask=subtask,
                role=ROLE,
                step=RunStep.IMPLEMENTATION,
            )
            for _ in range(count)
        ],
        batch_size=1000,
    )
    return Batch(workspace_id=workspace.pk, role=ROLE, run_ids=frozenset(r.pk for r in runs))


def check_claims(result: ModeResult, batch: Batch) -> ModeResult:
    """Count duplicates and losses from the database and from the clients' own records.

    A duplicate is a run handed out more than once (claim_count > 1, or received twice), or
    a claim of a run outside the batch. A loss is a run not held by exactly one client: never
    claimed, not running any more, or claimed in the database but received by no client.
    Runs still queued after claimers failed are reported apart: the errors already fail the
    run, and counting the work they left as lost would hide what went wrong.
    """
    from orchestration.models import AgentRun, RunStatus

    # The batch is the whole workspace, so this reads exactly its runs.
    rows = AgentRun.objects.filter(workspace_id=batch.workspace_id).values_list(
        "pk", "status", "claim_count"
    )
    received = Counter(result.claimed)
    handed_twice = {pk for pk, _, count in rows if count > 1}
    received_twice = {pk for pk, times in received.items() if times > 1}
    strangers = set(received) - batch.run_ids
    unheld = {pk for pk, status, count in rows if status != RunStatus.RUNNING or count == 0}
    left_queued = {pk for pk, status, count in rows if status == RunStatus.QUEUED and count == 0}
    excused = left_queued if result.errors else set()
    if excused:
        result.notes.append(f"{result.mode}: {len(excused):,} runs left queued by failed clients")
    result.duplicates = len(handed_twice | received_twice | strangers)
    result.losses = len((unheld | (batch.run_ids - set(received))) - handed_twice - excused)
    return result


# --- CPU accounting --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (psutil is not a dependency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores together spent working, from /proc/stat.

    user + nice + system + irq + softirq: idle, iowait and the hypervisor's steal are not
    work done here.
    """
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks[i] for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")


# --- (a) and (b): claimer processes ----------------------------------------------------------


def in_processes(mode: str, target: Callable[..., None], args: tuple, processes: int) -> ModeResult:
    """Run `target(index, barrier, reports, *args)` in spawned processes from one start line.

    Each process connects first and waits at the barrier, so neither interpreter start nor
    the first connection is timed.
    """
    context = mp.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    reports = context.Queue()
    workers = [
        context.Process(target=target, args=(index, barrier, reports, *args), daemon=True)
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    # A broken barrier means a worker failed to start; its report says why.
    with suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=START_TIMEOUT)
    collected = collect_reports(reports, workers)
    for worker in workers:
        worker.join(timeout=10)
    result = merge_reports(mode, collected, [pk for r in collected for pk in r["claimed"]])
    if result.claimed:
        per_claim = 1000 / len(result.claimed)
        cpu, db_cpu = (sum(r[key] for r in collected) * per_claim for key in ("cpu", "db_cpu"))
        result.notes.append(
            f"{mode}: CPU per claim: claimers {cpu:.2f} ms, PostgreSQL backends {db_cpu:.2f} ms"
        )
    return result


def collect_reports(reports: Queue, workers: list[BaseProcess]) -> list[Report]:
    collected: list[Report] = []
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while len(collected) < len(workers):
        try:
            collected.append(reports.get(timeout=1.0))
        except queue.Empty:
            # A worker killed outright (OOM, segfault) never reports: stop waiting for it.
            if time.monotonic() > deadline or not any(w.is_alive() for w in workers):
                missing = len(workers) - len(collected)
                report: Report = {**new_report(), "error": "a worker sent no report"}
                collected += [report] * missing
    return collected


@contextmanager
def worker_report(barrier: Any, reports: Any) -> Iterator[Report]:
    """Always send a report; a worker that fails breaks the barrier so nobody waits forever."""
    report = new_report()
    try:
        yield report
    except Exception:
        barrier.abort()
        report["error"] = traceback.format_exc()
    finally:
        reports.put(report)


def drain(claim_once: Callable[[], Any], report: Report, backend_pid: int) -> None:
    """Claim until there is no work, timing every successful claim.

    CPU is counted too, the claimer's and its PostgreSQL backend's: on a shared 2-core box
    wall-clock rates move with the neighbours' load, CPU per claim much less.
    """
    cpu, db_cpu = time.process_time(), cpu_seconds(backend_pid)
    report["start"] = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    while True:
        began = time.perf_counter()
        claimed = claim_once()
        if claimed is None:
            break
        report["latencies"].append(time.perf_counter() - began)
        report["claimed"].append(claimed)
    report["end"] = time.perf_counter()
    report["cpu"] = time.process_time() - cpu
    report["db_cpu"] = cpu_seconds(backend_pid) - db_cpu


def raw_claim(conn: psycopg.Connection, workspace_id: int, role: str, claimer: str) -> int | None:
    with conn.transaction():
        row = conn.execute(SELECT_NEXT, (workspace_id, role, QUEUED)).fetchone()
        if row is None:
            return None
        conn.execute(TAKE, (RUNNING, uuid.uuid4(), LEASE, claimer, row[0]))
    return row[0]


def raw_sql_worker(
    index: int, barrier: Any, reports: Any, database_url: str, workspace_id: int, role: str
) -> None:
    with (
        worker_report(barrier, reports) as report,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        barrier.wait(timeout=START_TIMEOUT)
        claim_once = partial(raw_claim, conn, workspace_id, role, f"bench-raw-{index}")
        drain(claim_once, report, conn.info.backend_pid)


def service_worker(
    index: int, barrier: Any, reports: Any, database_url: str, workspace_id: int, role: str
) -> None:
    with worker_report(barrier, reports) as report:
        os.environ["DATABASE_URL"] = database_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
        import django

        django.setup()
        from django.db import connection

        from orchestration import realtime
        from orchestration.services.runs import Claimer, run_claim

        claimer = Claimer(name=f"bench-service-{index}")
        connection.ensure_connection()
        # As in a long-running web or worker process: the live publisher is already up.
        realtime.warm_up()
        barrier.wait(timeout=START_TIMEOUT)

        def claim_once() -> int | None:
            run = run_claim(workspace_id=workspace_id, role=role, claimer=claimer)
            return None if run is None else run.pk

        drain(claim_once, report, connection.connection.info.backend_pid)


def raw_sql_mode(*, database_url: str, batch: Batch, processes: int = 4) -> ModeResult:
    """(a) The floor: the bare SKIP LOCKED select-then-update, no Django."""
    args = (database_url, batch.workspace_id, batch.role)
    return in_processes("a raw SQL", raw_sql_worker, args, processes)


def service_mode(*, database_url: str, batch: Batch, processes: int = 4) -> ModeResult:
    """(b) The product's claim service, each process with its own Django and connection."""
    args = (database_url, batch.workspace_id, batch.role)
    return in_processes("b run_claim", service_worker, args, processes)
