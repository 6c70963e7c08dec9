"""Handoff latency on PostgreSQL with the Redis broker and a real Celery worker.

    bin/bench handoffs [--handoffs N] [--burst K] [--smoke] [--strict]

(1) transition → claimable: `subtask_transition(name="start")` commits an Event; the worker's
    `orchestration.handle_event` runs the handoff table and queues Tara's tests run for an
    external (pull) profile. Timed from the transition's COMMIT to the first poll that sees
    the queued run. Measured one at a time, then in concurrent bursts of K transitions.
(2) enqueue → claimed: `run_enqueue` commits a run of a push (command) profile and sends
    `orchestration.execute_run` on commit; timed from that COMMIT to the run's `claimed_at`,
    which the worker sets as it claims the run, before any git or executor work.

The worker is started here (`celery worker --concurrency 2`) with the same DATABASE_URL and
REDIS_URL, after the queue was purged, and its whole process group is stopped however the
benchmark ends. The database (its name must say "bench") is rebuilt and migrated first.
Setup is not timed. Exit status: 1 on an error (a handoff that never happened, a worker that
died or logged an error); 2 on a missed target with --strict; 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent
# `bin/bench` puts the checkout on PYTHONPATH; a direct `python bench/handoffs.py` needs it too.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/codemaestro_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
NODE = "bench"  # the worker runs as bench@<host>
ACTOR = "bench"

TARGET_P95_MS = 50.0
DEFAULT_HANDOFFS = 500
SMOKE_HANDOFFS = 30
DEFAULT_BURST = 20
SMOKE_BURST = 10
WARMUP_HANDOFFS = 10  # enough for both pool processes to import, connect and warm up
WARMUP_RUNS = 4

POLL_INTERVAL = 0.001  # claimable detection in (1): the resolution stated in the output
RUN_POLL_INTERVAL = 0.005  # (2) reads the worker's own timestamp; this only paces the wait
SETTLE_SECONDS = 0.05  # lets a failed run's follow-up tasks finish before the next run
WORKER_START_TIMEOUT = 60.0
HANDOFF_TIMEOUT = 30.0
RUN_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0

# A queued tests run for one of these subtasks is exactly "the next run is claimable".
CLAIMABLE = """
    SELECT subtask_id FROM orchestration_agentrun
    WHERE subtask_id = ANY(%s) AND role = 'tester' AND step = 'tests' AND status = 'queued'
"""
RUN_STATE = """
    SELECT r.claimed_at, r.finished_at, s.status
    FROM orchestration_agentrun r JOIN orchestration_subtask s ON s.id = r.subtask_id
    WHERE r.id = %s
"""
TABLE_HEADER = (
    f"{'measure':<44} {'N':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    f"  target p95 < {TARGET_P95_MS:g} ms"
)


class BenchError(Exception):
    """Something the product promises did not happen; the benchmark cannot go on."""


@dataclass(frozen=True)
class Measure:
    name: str
    latencies_ms: list[float]

    def percentile(self, pct: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[pct - 1]

    @property
    def passed(self) -> bool:
        return self.percentile(95) < TARGET_P95_MS

    def row(self) -> str:
        cells = [self.percentile(p) for p in (50, 95, 99)] + [max(self.latencies_ms)]
        figures = " ".join(f"{cell:8.1f}" for cell in cells)
        verdict = "PASS" if self.passed else "FAIL"
        return f"{self.name:<44} {len(self.latencies_ms):>5} {figures}  {verdict}"


# --- Timing the commit ------------------------------------------------------------------------


class CommitClock:
    """When this thread's Django connection last committed.

    The services run their on-commit hooks (the publish to Redis) after COMMIT and before
    they return, so the time at return is late by the publish. Wrapping the connection's
    commit() stamps the moment the transaction is durable and visible, which is where a
    handoff's latency starts. Bench-side instrumentation only: the product is unchanged.
    """

    def __init__(self) -> None:
        self.monotonic = 0.0  # compared with this process's own detection times
        self.wall = 0.0  # compared with timestamps written by the worker
        self.returned = 0.0  # when the service returned, after its on-commit hooks

    @contextmanager
    def installed(self) -> Iterator[CommitClock]:
        from django.db import connections

        wrapper = connections["default"]  # this thread's own DatabaseWrapper
        original = wrapper.commit

        def timed_commit() -> None:
            original()
            self.monotonic, self.wall = time.perf_counter(), time.time()

        wrapper.commit = timed_commit
        try:
            yield self
        finally:
            del wrapper.commit  # back to the class's method

    def timed(self, call: Callable[[], Any]) -> Any:
        """Run one durable service; its commit times are then on the clock."""
        self.monotonic = self.wall = 0.0
        result = call()
        self.returned = time.perf_counter()
        if not self.monotonic:
            raise BenchError("the service returned without committing")
        return result


# --- Database and fixtures (setup, not timed) -------------------------------------------------


def rebuild_database(database_url: str) -> None:
    """Start from an empty, freshly migrated database: no bloat from earlier runs.

    Only a database whose name says "bench" is ever dropped.
    """
    params = conninfo_to_dict(database_url)
    name = str(params.pop("dbname", ""))
    if "bench" not in name:
        raise BenchError(f"refusing to rebuild {name!r}: the database name must say bench")
    with psycopg.connect(**params, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=30,
    )


def make_repository(path: Path) -> Path:
    """A one-commit repository on `main`: a push run checks out a worktree of it."""
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    (path / "README.md").write_text("handoff bench\n")
    git(path, "add", "README.md")
    git(path, "commit", "--quiet", "--no-gpg-sign", "-m", "initial")
    return path


def pending_subtasks(project: Any, count: int, prefix: str) -> list[int]:
    """`count` subtasks ready to start; bulk-created because setup is not what we time."""
    from orchestration.models import Subtask

    subtasks = Subtask.objects.bulk_create(
        Subtask(
            workspace_id=project.workspace_id,
            project=project,
            key=f"{prefix}-{index}",
            title=f"Handoff {prefix}-{index}",
            requirements_tester="A test that fails until the behaviour exists.",
        )
        for index in range(count)
    )
    return [subtask.pk for subtask in subtasks]


def tester_project(label: str) -> Any:
    """A project whose tests runs wait for an external agent: a handoff ends at 'queued'."""
    from accounts.services import workspace_create
    from orchestration.models import AgentProfile, Executor
    from orchestration.services import work

    workspace = workspace_create(name=f"Bench {label}", slug=f"bench-{label}")
    AgentProfile.objects.create(
        workspace=workspace, name="Tara", role="tester", executor=Executor.EXTERNAL
    )
    return work.project_create(workspace=workspace, name=f"Handoffs {label}", actor=ACTOR)


def push_project(repo: Path, count: int) -> tuple[Any, Any, list[int]]:
    """A project with a `true` command profile, and subtasks already in implementation.

    `true` changes no file, so every run fails as the agent's fault: one attempt escalates
    its subtask (max_attempts 1) instead of requeueing it, and the breaker threshold is out
    of reach so that a string of such failures never stops the dispatch being measured.
    """
    from accounts.services import workspace_create
    from orchestration.models import AgentProfile, Executor, Stage, Subtask, SubtaskStatus
    from orchestration.services import work

    workspace = workspace_create(name="Bench dispatch", slug="bench-dispatch")
    profile = AgentProfile.objects.create(
        workspace=workspace,
        name="Devon (true)",
        role="developer",
        executor=Executor.COMMAND,
        executor_config={"command": "true", "timeout": 30},
        breaker_threshold=2**31 - 1,
    )
    project = work.project_create(
        workspace=workspace,
        name="Dispatch",
        actor=ACTOR,
        repo_path=str(repo),
        policy={"max_infra_failures": 1, "max_attempts": 1},
    )
    subtasks = Subtask.objects.bulk_create(
        Subtask(
            workspace=workspace,
            project=project,
            key=f"RUN-{index}",
            title=f"Dispatch {index}",
            status=SubtaskStatus.IN_PROGRESS,
            stage=Stage.IMPLEMENTATION,
        )
        for index in range(count)
    )
    return project, profile, [subtask.pk for subtask in subtasks]


# --- The worker -------------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    node: str

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def errors(self) -> list[str]:
        text = self.log.read_text(errors="replace").splitlines()
        return [line for line in text if "Traceback" in line or " ERROR" in line]


def purge_queue() -> int:
    """Drop messages a previous run left behind: they name rows of a database now gone."""
    from codemaestro.celery import app

    return app.control.purge()


@contextmanager
def celery_worker(data_dir: Path) -> Iterator[Worker]:
    """A real worker in its own session, so stopping its process group leaves nothing."""
    log = data_dir / "worker.log"
    command = [
        str(Path(sys.executable).with_name("celery")),
        *("-A", "codemaestro", "worker", "-l", "warning", "--concurrency", "2"),
        *("-n", f"{NODE}@%h"),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            # Workers run as compose.yaml runs them: one reused connection per process.
            env={
                **os.environ,
                "DB_POOL": "false",
                "DB_CONN_MAX_AGE": "300",
                "CELERY_DB_REUSE_MAX": "1000",
            },
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process=process, log=log, node=f"{NODE}@{socket.gethostname()}")
    try:
        wait_until_ready(worker)
        yield worker
    finally:
        stop_process_group(process)


def wait_until_ready(worker: Worker) -> None:
    """Ping until the worker answers; no other worker may consume this queue."""
    from codemaestro.celery import app

    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise BenchError(f"the worker exited at start:\n{worker.log_tail()}")
        replies = app.control.ping(timeout=0.5)
        nodes = {node for reply in replies for node in reply}
        if worker.node in nodes:
            if nodes != {worker.node}:
                raise BenchError(f"other workers consume this broker: {sorted(nodes)}")
            return
    raise BenchError(f"the worker did not answer ping in {WORKER_START_TIMEOUT:g}s")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown of the worker, then SIGTERM and SIGKILL for whatever its group left.

    SIGTERM goes to the main process first: sent to the pool processes too, it kills them
    under their parent, which logs that as an error.
    """
    pgid = process.pid  # start_new_session made the worker its group's leader
    with suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        signal_group(pgid, signal.SIGKILL)
        process.wait()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)  # pool processes exit just after their parent
        if not group_alive(pgid):
            return
        signal_group(pgid, sig)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# --- (1) transition → claimable ---------------------------------------------------------------


class ClaimableWatch:
    """Polls PostgreSQL on its own connection for tests runs that became claimable.

    A run seen by a poll was committed before that poll's snapshot, and had not been by the
    previous poll's: stamping it with the poll's *send* time over-states a latency by at
    most one polling period. The statement is prepared, so a poll is one index lookup.
    """

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.polls = 0
        self.polling_seconds = 0.0

    def close(self) -> None:
        self.conn.close()

    def wait(self, subtask_ids: Collection[int]) -> dict[int, float]:
        pending, seen = set(subtask_ids), {}
        started = time.perf_counter()
        while pending:
            sent = time.perf_counter()
            rows = self.conn.execute(CLAIMABLE, [list(pending)], prepare=True).fetchall()
            self.polls += 1
            for (subtask_id,) in rows:
                seen[subtask_id] = sent
            pending.difference_update(seen)
            if pending and sent - started > HANDOFF_TIMEOUT:
                raise BenchError(f"no tests run queued after {HANDOFF_TIMEOUT:g}s for {pending}")
            if pending:
                time.sleep(POLL_INTERVAL)
        self.polling_seconds += time.perf_counter() - started
        return seen

    @property
    def period_ms(self) -> float:
        return self.polling_seconds / self.polls * 1000 if self.polls else float("nan")


def start_subtask(subtask_id: int, clock: CommitClock) -> None:
    from orchestration.models import Subtask
    from orchestration.services.transitions import subtask_transition

    subtask = Subtask.objects.get(pk=subtask_id)
    clock.timed(lambda: subtask_transition(subtask=subtask, name="start", actor=ACTOR))


def sequential_handoffs(
    subtask_ids: list[int], watch: ClaimableWatch
) -> tuple[list[float], list[float]]:
    """One transition at a time; returns latencies and the on-commit publish times (ms)."""
    latencies: list[float] = []
    publishes: list[float] = []
    with CommitClock().installed() as clock:
        for subtask_id in subtask_ids:
            start_subtask(subtask_id, clock)
            seen = watch.wait([subtask_id])
            latencies.append((seen[subtask_id] - clock.monotonic) * 1000)
            publishes.append((clock.returned - clock.monotonic) * 1000)
    return latencies, publishes


def burst_handoffs(subtask_ids: list[int], watch: ClaimableWatch, size: int) -> list[float]:
    latencies: list[float] = []
    for first in range(0, len(subtask_ids), size):
        latencies += one_burst(subtask_ids[first : first + size], watch)
    return latencies


def one_burst(subtask_ids: list[int], watch: ClaimableWatch) -> list[float]:
    """Threads, each on its own connection, start their subtasks at the same moment."""
    commits: dict[int, float] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(subtask_ids))
    threads = [
        threading.Thread(target=burst_member, args=(pk, barrier, commits, failures))
        for pk in subtask_ids
    ]
    for thread in threads:
        thread.start()
    seen: dict[int, float] = {}
    timed_out: BenchError | None = None
    try:
        seen = watch.wait(subtask_ids)
    except BenchError as exc:
        timed_out = exc  # a failed transition explains it better; look at those first
    for thread in threads:
        thread.join()
    if failures:
        raise BenchError(f"a transition of the burst failed: {failures[0]!r}") from failures[0]
    if timed_out is not None:
        raise timed_out
    return [(seen[pk] - commits[pk]) * 1000 for pk in subtask_ids]


def burst_member(
    subtask_id: int, barrier: threading.Barrier, commits: dict[int, float], failures: list
) -> None:
    from django.db import connection

    try:
        # No connection is taken before the start line: with the product's pool (10 by
        # default) a burst larger than the pool would wait at the barrier forever. Taking
        # one is not timed anyway, since a latency starts at the transition's COMMIT.
        barrier.wait(timeout=HANDOFF_TIMEOUT)
        with CommitClock().installed() as clock:
            start_subtask(subtask_id, clock)
        commits[subtask_id] = clock.monotonic
    except BaseException as exc:
        barrier.abort()
        failures.append(exc)
    finally:
        connection.close()


# --- (2) enqueue → claimed by the worker ------------------------------------------------------


def claim_latencies(
    project: Any, profile: Any, subtask_ids: list[int], database_url: str
) -> list[float]:
    """Queue push runs one at a time; each is claimed, fails and escalates before the next."""
    from orchestration.models import RunStep, Subtask
    from orchestration.services.work import run_enqueue

    latencies = []
    with psycopg.connect(database_url, autocommit=True) as conn, CommitClock().installed() as clock:
        for subtask in Subtask.objects.filter(pk__in=subtask_ids).order_by("pk"):
            run = clock.timed(
                lambda subtask=subtask: run_enqueue(
                    project=project,
                    subtask=subtask,
                    profile=profile,
                    role="developer",
                    step=RunStep.IMPLEMENTATION,
                    actor=ACTOR,
                )
            )
            claimed_at = wait_for_run(conn, run.pk)
            latencies.append((claimed_at - clock.wall) * 1000)
            time.sleep(SETTLE_SECONDS)
    return latencies


def wait_for_run(conn: psycopg.Connection, run_id: int) -> float:
    """The run's claimed_at (epoch seconds), once it has finished and its subtask moved on."""
    claimed_at = finished_at = subtask_status = None
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        claimed_at, finished_at, subtask_status = conn.execute(
            RUN_STATE, [run_id], prepare=True
        ).fetchone()
        if finished_at is not None and subtask_status != "in_progress":
            if claimed_at is None:
                raise BenchError(f"run {run_id} finished without being claimed")
            return claimed_at.timestamp()
        time.sleep(RUN_POLL_INTERVAL)
    if claimed_at is None:
        raise BenchError(f"run {run_id} was not claimed within {RUN_TIMEOUT:g}s")
    # With no beat running here, a lost follow-up message is never re-sent by the sweep.
    raise BenchError(
        f"run {run_id} was claimed but its failure was not handled within {RUN_TIMEOUT:g}s "
        f"(finished: {finished_at is not None}; subtask {subtask_status})"
    )


# --- The benchmark ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    handoffs: int
    burst: int
    database_url: str
    redis_url: str


def run_benchmark(plan: Plan, data_dir: Path) -> tuple[list[Measure], list[str]]:
    """Set up, start the worker, warm it up, measure; the worker is stopped on every path."""
    rebuild_database(plan.database_url)
    setup_django()
    purged = purge_queue()
    warm = WARMUP_HANDOFFS
    tester = tester_project("handoffs")
    sequential_ids = pending_subtasks(tester, warm + plan.handoffs, "SEQ")
    burst_ids = pending_subtasks(tester, plan.handoffs, "BURST")
    repo = make_repository(data_dir / "repo")
    project, profile, run_ids = push_project(repo, WARMUP_RUNS + plan.handoffs)
    with ExitStack() as stack:
        watch = ClaimableWatch(plan.database_url)
        stack.callback(watch.close)
        worker = stack.enter_context(celery_worker(data_dir))
        sequential_handoffs(sequential_ids[:warm], watch)
        claim_latencies(project, profile, run_ids[:WARMUP_RUNS], plan.database_url)
        watch.polls, watch.polling_seconds = 0, 0.0
        sequential, publishes = sequential_handoffs(sequential_ids[warm:], watch)
        burst = burst_handoffs(burst_ids, watch, plan.burst)
        claims = claim_latencies(project, profile, run_ids[WARMUP_RUNS:], plan.database_url)
    # Read after the worker stopped, so an error during its shutdown counts too.
    if errors := worker.errors():
        raise BenchError("the worker logged errors:\n" + "\n".join(errors[:20]))
    measures = [
        Measure("transition → claimable (sequential)", sequential),
        Measure(f"transition → claimable (bursts of {plan.burst})", burst),
        Measure("enqueue push run → claimed by worker", claims),
    ]
    notes = [
        f"claimable detection polls every {POLL_INTERVAL * 1000:g} ms (measured period "
        f"{watch.period_ms:.2f} ms): a latency of (1) is over-stated by at most one period",
        "(2) is the worker's claimed_at minus the wall clock at run_enqueue's COMMIT",
        "latencies start at COMMIT; the on-commit publish to Redis inside the service call "
        f"took p50 {statistics.median(publishes):.2f} ms more before the call returned",
        f"queue purged before start: {purged} message(s); warm-up {warm} handoffs and "
        f"{WARMUP_RUNS} runs, not counted; worker: celery --concurrency 2 -n {NODE}@%h",
    ]
    return measures, notes


def print_report(plan: Plan, measures: list[Measure], notes: list[str]) -> None:
    database = conninfo_to_dict(plan.database_url).get("dbname")
    print(
        f"handoff latency: {plan.handoffs} handoffs per measure; PostgreSQL {database}, "
        f"Redis broker {plan.redis_url}"
    )
    print(TABLE_HEADER)
    for measure in measures:
        print(measure.row())
    for note in notes:
        print(f"  - {note}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handoffs", type=int, default=DEFAULT_HANDOFFS, help="per measure")
    parser.add_argument("--burst", type=int, default=DEFAULT_BURST, help="transitions at once")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_HANDOFFS} handoffs (CI)")
    parser.add_argument("--strict", action="store_true", help="exit 2 on a missed target")
    args = parser.parse_args(argv)
    if args.smoke:
        args.handoffs, args.burst = SMOKE_HANDOFFS, min(args.burst, SMOKE_BURST)
    if args.handoffs < 1 or args.burst < 1:
        parser.error("--handoffs and --burst must be at least 1")
    return args


def interrupt_on_sigterm() -> None:
    """SIGTERM (a CI timeout) unwinds like Ctrl-C, so the worker is still stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    plan = Plan(
        handoffs=args.handoffs,
        burst=min(args.burst, args.handoffs),
        database_url=os.environ["DATABASE_URL"],
        redis_url=os.environ["REDIS_URL"],
    )
    with tempfile.TemporaryDirectory(prefix="bench-handoffs-") as data_dir:
        # Worktrees and the worker's files go here, not into the checkout's var/.
        os.environ["CODEMAESTRO_DATA_DIR"] = data_dir
        try:
            measures, notes = run_benchmark(plan, Path(data_dir))
        except (BenchError, psycopg.OperationalError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; the worker was stopped", file=sys.stderr)
            return 130
    print_report(plan, measures, notes)
    missed = [m.name for m in measures if not m.passed]
    return 2 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
