"""Claim throughput on PostgreSQL: the raw SQL floor, the run_claim service, the HTTP API.

    bin/bench claims [--runs N] [--http-runs N] [--smoke] [--strict] [--web-processes K]

(a) processes run a bare `FOR UPDATE SKIP LOCKED` claim loop with psycopg: the floor;
(b) processes call orchestration.services.runs.run_claim, each with its own Django;
(c) agents POST /api/v1/runs/claim/ over their own keep-alive connections to the
    production HTTP server, bin/web (granian, WSGI) with the production settings, started
    the way compose.yaml runs `web`.

The database (its name must say "bench") is rebuilt and migrated on every run. Each mode
drains freshly queued runs in a workspace of its own; setup is not timed. Afterwards the
database and the clients' records must agree that every run was claimed exactly once.
Exit status: 1 on any duplicate, loss or worker error; 2 on a missed performance target
with --strict; 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bench.claiming.agents import http_mode
from bench.claiming.claimers import (
    Batch,
    ModeResult,
    check_claims,
    database_url_for,
    queue_runs,
    raw_sql_mode,
    service_mode,
)

TARGET_B_OVER_A = 0.6
TARGET_C_RATE = 300.0
TARGET_C_P95_MS = 50.0


def rebuild_database(database_url: str) -> None:
    """Start every run from an empty database, the way the test runner does.

    Earlier runs leave no bloat behind to skew the figures, and a migration edited in place
    cannot leave a stale schema. Only a database whose name says "bench" is ever dropped.
    """
    params = conninfo_to_dict(database_url)
    name = params.pop("dbname", "")
    if "bench" not in name:
        sys.exit(f"refusing to rebuild {name!r}: the benchmark's database name must say bench")
    with psycopg.connect(**params, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def sessions_opened() -> int:
    """PostgreSQL's count of sessions opened on this database so far (stats, so approximate)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bin/bench claims", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, help="runs per mode (default 5000 for a/b)")
    parser.add_argument("--http-runs", type=int, help="runs for c (default 3000, or --runs)")
    parser.add_argument("--smoke", action="store_true", help="about 200 runs per mode, for CI")
    parser.add_argument("--strict", action="store_true", help="exit 2 on a missed target")
    parser.add_argument("--processes", type=int, default=4, help="claimer processes, a and b")
    parser.add_argument("--agents", type=int, default=16, help="HTTP agents for c")
    parser.add_argument(
        "--web-processes",
        type=int,
        default=os.cpu_count() or 2,
        help="bin/web worker processes for c (default: one per core)",
    )
    parser.add_argument("--modes", default="abc", help="which modes to run, e.g. ab")
    parser.add_argument(
        "--web-env",
        action="append",
        default=[],
        type=env_assignment,
        metavar="NAME=VALUE",
        help="extra environment for bin/web, to try a deployment setting (repeatable)",
    )
    args = parser.parse_args(argv)
    runs = 200 if args.smoke else args.runs
    args.http_runs = args.http_runs or runs or 3000
    args.runs = runs or 5000
    return args


def env_assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def print_report(results: list[ModeResult], load: float) -> None:
    # Neighbours' load moves the wall-clock figures on a small shared box; say what it was.
    print(f"load average before the run: {load:.2f} on {os.cpu_count()} cores")
    header = ("mode", "workers", "claims", "seconds", "claims/s", "p50 ms", "p95 ms")
    print(f"{header[0]:<20}" + "".join(f"{h:>9}" for h in header[1:]) + "  duplicates  losses")
    for r in results:
        cells = (r.workers, len(r.claimed), f"{r.seconds:.2f}", f"{r.rate:,.0f}")
        cells += (f"{r.percentile_ms(50):.1f}", f"{r.percentile_ms(95):.1f}")
        row = f"{r.mode:<20}" + "".join(f"{c:>9}" for c in cells)
        print(f"{row}{r.duplicates:>12}{r.losses:>8}")
    for r in results:
        for note in r.notes:
            print(note)
        for error, times in Counter(r.errors).most_common(8):
            print(f"{r.mode}: ERROR (x{times}) {error}")


def judge(results: list[ModeResult]) -> tuple[bool, bool]:
    """Print the ratios and verdicts; return (integrity held, performance targets met)."""
    by_mode = {r.mode[0]: r for r in results}
    a, b, c = by_mode.get("a"), by_mode.get("b"), by_mode.get("c")
    fast = True
    if a and b:
        ratio = b.rate / a.rate if a.rate else 0.0
        met = ratio >= TARGET_B_OVER_A
        fast &= met
        print(f"b/a = {ratio:.2f}   target ≥ {TARGET_B_OVER_A}   {verdict(met)}")
    if a and c:
        print(f"c/a = {c.rate / a.rate if a.rate else 0.0:.2f}")
    if c:
        met = c.rate >= TARGET_C_RATE and c.percentile_ms(95) < TARGET_C_P95_MS
        fast &= met
        print(
            f"c = {c.rate:,.0f} claims/s, p95 {c.percentile_ms(95):.1f} ms   "
            f"target ≥ {TARGET_C_RATE:.0f}/s with p95 < {TARGET_C_P95_MS:.0f} ms   {verdict(met)}"
        )
    sound = all(r.duplicates == r.losses == 0 and not r.errors for r in results)
    print(f"duplicates = losses = errors = 0 in every mode   {verdict(sound)}")
    return sound, fast


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run_mode(
    mode: str, args: argparse.Namespace, batch: Batch, database_url: str, redis_url: str
) -> ModeResult:
    if mode == "a":
        return raw_sql_mode(database_url=database_url, batch=batch, processes=args.processes)
    if mode == "b":
        return service_mode(database_url=database_url, batch=batch, processes=args.processes)
    return http_mode(
        database_url=database_url,
        redis_url=redis_url,
        batch=batch,
        agents=args.agents,
        web_processes=args.web_processes,
        web_env=dict(args.web_env),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        sys.exit("DATABASE_URL is not set: run this through bin/bench")
    rebuild_database(os.environ["DATABASE_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("the claim benchmark needs PostgreSQL (SKIP LOCKED)")
    call_command("migrate", verbosity=0)
    database_url = database_url_for(settings.DATABASES["default"])
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")
    load = os.getloadavg()[0]
    results = []
    for mode in (key for key in "abc" if key in args.modes):
        batch = queue_runs(count=args.http_runs if mode == "c" else args.runs, label=mode)
        sessions = sessions_opened()
        result = check_claims(run_mode(mode, args, batch, database_url, redis_url), batch)
        time.sleep(0.5)  # let exited backends flush their statistics
        opened = sessions_opened() - sessions
        result.notes.append(f"{result.mode}: PostgreSQL sessions opened ≈ {opened:,}")
        results.append(result)
    print_report(results, load)
    sound, fast = judge(results)
    if not sound:
        return 1
    return 2 if args.strict and not fast else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
