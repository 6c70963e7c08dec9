"""The handoff benchmark runs end to end at its smoke size: real worker, PostgreSQL, Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
# Databases and Redis db of its own: the bench rebuilds its database and purges its queue.
SMOKE_DATABASE = "codemaestro_bench_smoke"
SMOKE_DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{SMOKE_DATABASE}"
SMOKE_REDIS_URL = "redis://127.0.0.1:6379/3"
TIMEOUT_SECONDS = 180
HEADER = re.compile(r"^measure\s+N\s+p50 ms\s+p95 ms\s+p99 ms\s+max ms\s+target p95 < 50 ms$", re.M)
MEASURES = (
    "transition → claimable (sequential)",
    "transition → claimable (bursts of 10)",
    "enqueue push run → claimed by worker",
)


def ensure_database(name: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_smoke_bench() -> tuple[int, str]:
    env = {
        **os.environ,
        "DATABASE_URL": SMOKE_DATABASE_URL,
        "REDIS_URL": SMOKE_REDIS_URL,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the bench uses the product's own settings
    process = subprocess.Popen(
        [sys.executable, "bench/handoffs.py", "--smoke"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the bench then still stops the worker it started.
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the smoke bench took over {TIMEOUT_SECONDS}s:\n{output}")
    return process.returncode, output


@pytest.mark.slow
def test_smoke_run_prints_the_latency_table():
    # given
    ensure_database(SMOKE_DATABASE)

    # when
    returncode, output = run_smoke_bench()

    # then
    assert returncode == 0, output
    assert HEADER.search(output), output
    for measure in MEASURES:
        assert re.search(
            rf"^{re.escape(measure)}\s+30\s+(\s+\d+\.\d){{4}}\s+(PASS|FAIL)$", output, re.M
        ), output
