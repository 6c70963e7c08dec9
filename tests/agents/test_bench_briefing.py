"""The briefing benchmark runs at its smoke size, and its query count stays constant."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cycle.workers import ROOT

# A database of its own: the bench drops and rebuilds it.
SMOKE_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/codemaestro_bench_briefing_smoke"


@pytest.mark.slow
def test_the_briefing_bench_runs_and_its_queries_are_constant():
    # given
    env = {**os.environ, "DATABASE_URL": SMOKE_DATABASE_URL, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # when
    done = subprocess.run(
        [sys.executable, "bench/briefing.py", "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # then
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS (constant)" in done.stdout
    assert "briefing_build (service)" in done.stdout
    assert "GET /api/agent/briefing (API)" in done.stdout
