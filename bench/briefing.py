"""Briefing latency on PostgreSQL: a 10,000-file repository, 1,000 events per subtask.

    bin/bench briefing [--files N] [--events N] [--subtasks N] [--briefings N] [--smoke] [--strict]

Each subtask has the long history a busy one gathers: 1,000 events, runs (one failed), a
failed verify test run with failing cases, questions. The feature branch has changed a few
files. Measured: `briefing_build` as the services call it, and GET /api/agent/briefing/<id>
through Django's test client (authentication, access checks, JSON rendering; no network).
Every briefing's SQL queries are counted; they must be the same number for a subtask with
no history at all. The first briefing after a new commit lists the repository's tree (then
cached per commit); it is reported apart. The database (its name must say "bench") is
rebuilt and migrated first; setup is not timed.
Exit status: 1 if the query count varies; 2 on a missed latency target with --strict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/codemaestro_bench"
TARGET_P95_MS = 100.0
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def rebuild_database(database_url: str) -> None:
    params = conninfo_to_dict(database_url)
    name = params.pop("dbname", "")
    if "bench" not in name:
        sys.exit(f"refusing to rebuild {name!r}: the benchmark's database name must say bench")
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


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=True,
        env={**os.environ, **GIT_ENV}, timeout=300,
    )  # fmt: skip
    return result.stdout.decode()


def module_text(n: int) -> str:
    lines = [f'"""Module {n}: part of the bench repository."""', ""]
    for f in range(6):
        lines += [f"def function_{n}_{f}(value):", f"    return value * {f} + {n}", ""]
    return "\n".join(lines) + "\n"


def make_repository(path: Path, files: int) -> None:
    """`files` files in one commit on main (through fast-import: seconds, not minutes)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    stream = ["commit refs/heads/main", "committer bench <bench@localhost> 1700000000 +0000",
              "data 4", "init"]  # fmt: skip
    for n in range(files):
        folder = f"src/pkg{n // 100:03d}"
        name = f"{folder}/module_{n}.py" if n % 10 else f"tests/test_module_{n}.py"
        body = module_text(n).encode()
        stream += [f"M 644 inline {name}", f"data {len(body)}", body.decode()]
    git(path, "fast-import", "--quiet", stdin=("\n".join(stream) + "\n").encode())
    git(path, "reset", "-q", "--hard", "main")


def feature_branch(path: Path, branch: str) -> None:
    """A feature branch that has changed a few files: the diff a briefing shows."""
    git(path, "checkout", "-q", "-b", branch)
    for n in (1, 2, 3):
        target = path / f"src/pkg000/module_{n}.py"
        target.write_text(target.read_text() + f"\n\ndef added_{n}(value):\n    return -value\n")
        git(path, "commit", "-qam", f"change {n}")
    git(path, "checkout", "-q", "main")


def seed(repo: Path, subtasks: int, events: int):
    from accounts.models import Workspace
    from accounts.services import token_create_for_agent
    from agents.models import Question
    from orchestration.models import (
        AgentRun,
        Event,
        FeatureRequest,
        Project,
        Subtask,
        TestCaseResult,
        TestRun,
    )

    workspace = Workspace.objects.create(name="Bench", slug="bench-briefing")
    project = Project.objects.create(
        workspace=workspace, name="big", slug="big", repo_path=str(repo)
    )
    feature = FeatureRequest.objects.create(
        workspace=workspace, project=project, title="Bench feature", slug="bench"
    )
    feature_branch(repo, feature.branch)
    made = []
    for n in range(subtasks):
        subtask = Subtask.objects.create(
            workspace=workspace, project=project, feature=feature, key=f"B-{n}",
            title=f"Change function_{n * 10 + 1}_2 in module_{n * 10 + 1}",
            requirements_developer=f"Edit src/pkg000/module_{n * 10 + 1}.py so that "
            f"`function_{n * 10 + 1}_2` rounds; keep `function_{n * 10 + 1}_3` as is.",
            requirements_tester=f"Pin `function_{n * 10 + 1}_2` for negative values.",
        )  # fmt: skip
        history(subtask, events, AgentRun, Event, TestRun, TestCaseResult, Question)
        made.append(subtask)
    fresh = Subtask.objects.create(
        workspace=workspace, project=project, feature=feature, key="FRESH", title="no history"
    )
    _, key = token_create_for_agent(workspace=workspace, role="developer", name="bench")
    return made, fresh, key


def history(subtask, events: int, AgentRun, Event, TestRun, TestCaseResult, Question) -> None:
    common = {"workspace_id": subtask.workspace_id, "project_id": subtask.project_id}
    Event.objects.bulk_create(
        Event(**common, subtask=subtask, kind="subtask.stage", actor="agent:bench",
              message=f"step {i} of {subtask.key}: a line of history of ordinary length")
        for i in range(events)
    )  # fmt: skip
    for attempt, status in ((1, "failed"), (2, "succeeded"), (3, "queued")):
        AgentRun.objects.create(
            **common, subtask=subtask, role="developer", step="implementation",
            attempt=attempt, status=status, error="tests failed" if status == "failed" else "",
        )  # fmt: skip
    test_run = TestRun.objects.create(
        **common, subtask=subtask, purpose="verify", status="failed", total=40, passed=35,
        failed=5, failure_context="Tests failed:\n" + "AssertionError: 1 != 2\n" * 60,
    )  # fmt: skip
    TestCaseResult.objects.bulk_create(
        TestCaseResult(test_run=test_run, name=f"test_case_{i}", classname="tests.test_module_10",
                       outcome="failed", message="AssertionError: 1 != 2")
        for i in range(5)
    )  # fmt: skip
    for i in range(3):
        Question.objects.create(
            workspace_id=subtask.workspace_id, subtask=subtask, asked_by="agent:bench",
            text=f"Question {i} about {subtask.key}?",
        )  # fmt: skip


def timed(call: Callable[[], object]) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - start) * 1000
    return elapsed, len(queries)


def service_call(subtask_id: int) -> Callable[[], object]:
    from agents.briefing import briefing_build
    from orchestration.models import Subtask

    def call() -> object:
        # As the API does: fetch the subtask with what the briefing reads from it, then build.
        subtask = Subtask.objects.select_related("project__workspace", "feature", "assignee").get(
            pk=subtask_id
        )
        return briefing_build(subtask=subtask, requested_by="bench", role="developer")

    return call


def api_call(client, code) -> Callable[[], object]:
    def call() -> object:
        response = client.get(f"/api/agent/briefing/{code}")
        assert response.status_code == 200, response.content[:500]
        return response

    return call


def percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def row(name: str, times: list[float], queries: set[int]) -> str:
    p50, p95 = statistics.median(times), percentile(times, 95)
    counts = "/".join(str(q) for q in sorted(queries))
    verdict = "PASS" if p95 < TARGET_P95_MS else "FAIL"
    return (
        f"{name:<32}{len(times):>6}{p50:>10.1f}{p95:>10.1f}{max(times):>10.1f}"
        f"{counts:>10}   {verdict} (p95 < {TARGET_P95_MS:g} ms)"
    )


def measure(args: argparse.Namespace) -> int:
    from django.test import Client

    workdir = Path(tempfile.mkdtemp(prefix="bench-briefing-"))
    repo = workdir / "repo"
    started = time.perf_counter()
    make_repository(repo, args.files)
    subtasks, fresh, key = seed(repo, args.subtasks, args.events)
    print(f"setup: {args.files} files, {args.subtasks} subtasks x {args.events} events "
          f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
    cold, cold_queries = timed(service_call(subtasks[0].pk))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    # The token's first use writes its last-used time (then at most once a minute): that
    # write belongs to authentication, not to briefings.
    api_call(client, fresh.code)()
    results: dict[str, tuple[list[float], set[int]]] = {}
    for name, make in (
        ("briefing_build (service)", lambda s: service_call(s.pk)),
        ("GET /api/agent/briefing (API)", lambda s: api_call(client, s.code)),
    ):
        times, counts = [], set()
        for i in range(args.briefings):
            elapsed, queries = timed(make(subtasks[i % len(subtasks)]))
            times.append(elapsed)
            counts.add(queries)
        results[name] = (times, counts)
    fresh_queries = {timed(service_call(fresh.pk))[1]}
    fresh_api = {timed(api_call(client, fresh.code))[1]}
    header = (f"{'measure':<32}{'N':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"
              f"{'queries':>10}")  # fmt: skip
    print(header)
    for name, (times, counts) in results.items():
        print(row(name, times, counts))
    print(f"{'first briefing (tree not cached)':<32}{1:>6}{cold:>10.1f}{'':>20}{cold_queries:>10}")
    service_counts = results["briefing_build (service)"][1] | fresh_queries
    api_counts = results["GET /api/agent/briefing (API)"][1] | fresh_api
    constant = len(service_counts) == 1 and len(api_counts) == 1
    print(
        f"queries per briefing: service {sorted(service_counts)}, API {sorted(api_counts)} "
        f"(with a subtask of no history): {'PASS (constant)' if constant else 'FAIL (varies)'}"
    )
    missed = any(percentile(t, 95) >= TARGET_P95_MS for t, _ in results.values())
    if not constant:
        return 1
    return 2 if missed and args.strict else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bin/bench briefing", description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--subtasks", type=int, default=20)
    parser.add_argument("--briefings", type=int, default=300)
    parser.add_argument("--smoke", action="store_true", help="a small run, for CI")
    parser.add_argument("--strict", action="store_true", help="exit 2 on a missed target")
    args = parser.parse_args(argv)
    if args.smoke:
        args.files, args.events, args.subtasks, args.briefings = 2_000, 200, 4, 30
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    rebuild_database(database_url)
    setup_django()
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
