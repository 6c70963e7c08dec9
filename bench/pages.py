"""Control-room pages at scale: board, control room and activity search response times.

    bin/bench pages [--subtasks N] [--events N] [--repeat N] [--smoke] [--rebuild] [--strict]

Fills one workspace of a PostgreSQL database of its own (`<bench database>_pages`, so the
other benchmarks' rebuilds never race it) with 100,000 subtasks and 1,000,000 events by
default — generated inside PostgreSQL with INSERT … SELECT generate_series, search vectors
included — then requests each page through Django's test client (the whole view, template
and middleware stack, no network) and reports p50/p95 and the number of queries. The data
is kept between runs (same sizes); --rebuild starts again.

Targets (DESIGN issue 5): pages p95 < 200 ms with a query count that does not depend on
the data; search p95 < 50 ms at 1,000,000 events. Exit 2 on a missed target with --strict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

PAGE_TARGET_MS = 200.0
SEARCH_TARGET_MS = 50.0
STATES = [
    ("pending", 0.20), ("in_progress", 0.05), ("testing", 0.02), ("ready_for_review", 0.03),
    ("completed", 0.62), ("blocked", 0.03), ("failed", 0.02), ("retrying", 0.03),
]  # fmt: skip
SEARCHES = [
    ("a rare test name", "test_unique_slug_appends_a_number"),
    ("a common word", "failed"),
    ("a phrase", '"verify implementation passed"'),
    ("a log line", "AssertionError hello-world"),
]


def own_database(url: str) -> str:
    params = conninfo_to_dict(url)
    name = params.pop("dbname", "codemaestro_bench")
    if "bench" not in name:
        sys.exit(f"refusing to use {name!r}: the benchmark's database name must say bench")
    name = name if name.endswith("_pages") else f"{name}_pages"
    with psycopg.connect(**params, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params["dbname"] = name
    return "postgres://{user}@{host}:{port}/{dbname}".format(
        user=params.get("user", "postgres"),
        host=params.get("host", "127.0.0.1"),
        port=params.get("port", 5432),
        dbname=name,
    )


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
    os.environ.setdefault("DB_POOL", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def populate(subtasks: int, events: int, *, rebuild: bool) -> tuple[object, object]:
    """The bench workspace and its member, creating the data when missing or resized."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.models import Membership, Role, Workspace
    from orchestration.models import Event, Subtask

    slug = "bench-pages"
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace and not rebuild:
        have = (Subtask.objects.filter(workspace=workspace).count(), _count_events(workspace))
        if have == (subtasks, events):
            print(f"reusing {subtasks:,} subtasks and {events:,} events")
            return workspace, Membership.objects.get(workspace=workspace).user
    if workspace:
        print("dropping the previous bench data …")
        with connection.cursor() as cursor:
            for table in ("orchestration_event", "orchestration_subtaskdependency",
                          "orchestration_agentrun", "orchestration_subtask",
                          "orchestration_featurerequest", "orchestration_project"):  # fmt: skip
                cursor.execute(f"TRUNCATE {table} CASCADE")
        Workspace.objects.filter(slug=slug).delete()
    workspace = Workspace.objects.create(name="Bench", slug=slug)
    user, _ = get_user_model().objects.get_or_create(username="bench-reader")
    Membership.objects.create(workspace=workspace, user=user, role=Role.AUTHOR)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        _generate(cursor, workspace.pk, subtasks, events)
    print(f"generated {subtasks:,} subtasks and {events:,} events in "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    assert Event.objects.filter(workspace=workspace).exists()
    return workspace, user


def _count_events(workspace) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM orchestration_event WHERE workspace_id = %s", [workspace.pk]
        )
        return cursor.fetchone()[0]


def _generate(cursor, ws: int, subtasks: int, events: int) -> None:
    features = max(subtasks // 10, 1)
    runs = max(subtasks // 5, 1)
    cursor.execute(
        "INSERT INTO orchestration_project (code, workspace_id, name, slug, repo_path, repo_url,"
        " default_branch, test_command, policy, created_at) SELECT gen_random_uuid(), %s,"
        " 'Project ' || g, 'project-' || g, '', '', 'main', 'pytest', '{}'::jsonb, now()"
        " FROM generate_series(1, 5) g",
        [ws],
    )
    cursor.execute("SELECT min(id) FROM orchestration_project WHERE workspace_id = %s", [ws])
    p0 = cursor.fetchone()[0]
    cursor.execute(
        "INSERT INTO orchestration_featurerequest (code, workspace_id, project_id, title,"
        " description, slug, status, frd, created_at, updated_at) SELECT gen_random_uuid(), %s,"
        " %s + g %% 5, 'Feature ' || g, '', 'feature-' || g, 'in_progress', '',"
        " now() - (g || ' minutes')::interval, now() FROM generate_series(1, %s) g",
        [ws, p0, features],
    )
    cursor.execute("SELECT min(id) FROM orchestration_featurerequest WHERE workspace_id = %s", [ws])
    f0 = cursor.fetchone()[0]
    # Each subtask's state from the distribution above, by its number's position.
    cases, edge = [], 0.0
    for state, share in STATES:
        edge += share
        cases.append(f"WHEN (g %% 1000) < {int(edge * 1000)} THEN '{state}'")
    status = "CASE " + " ".join(cases) + " ELSE 'completed' END"
    cursor.execute(
        "INSERT INTO orchestration_subtask (code, workspace_id, project_id, feature_id, key,"
        " title, description, requirements_developer, requirements_tester, owner_role, risk,"
        " status, stage, attempts, tester_attempts, infra_failures, estimate_hours,"
        " blocked_reason, created_at, updated_at, status_changed_at)"
        " SELECT gen_random_uuid(), %s, %s + (g / 10) %% 5, %s + (g / 10) %% %s, 'k-' || g,"
        " 'Subtask number ' || g, '', 'do it', 'test it',"
        " (ARRAY['developer','tester','pm'])[1 + g %% 3], (ARRAY['low','medium','high'])[1 + g %% 3],"  # noqa: E501
        f" {status}, 'implementation', g %% 4, 0, 0, 0.5, '',"
        " now() - (g || ' seconds')::interval, now(), now() - ((g * 7) %% 100000 || ' seconds')::interval"  # noqa: E501
        " FROM generate_series(1, %s) g",
        [ws, p0, f0, features, subtasks],
    )
    cursor.execute("SELECT min(id) FROM orchestration_subtask WHERE workspace_id = %s", [ws])
    s0 = cursor.fetchone()[0]
    cursor.execute(
        "INSERT INTO orchestration_subtaskdependency (subtask_id, depends_on_id, created_at)"
        " SELECT %s + g, %s + g - 1, now() FROM generate_series(1, %s - 1) g WHERE g %% 10 <> 0",
        [s0, s0, subtasks],
    )
    cursor.execute(
        "INSERT INTO orchestration_agentrun (code, workspace_id, project_id, feature_id,"
        " subtask_id, role, step, status, attempt, available_at, claimed_by, claim_count,"
        " briefing, output, result, error, tokens_in, tokens_out, cost, created_at, claimed_at,"
        " heartbeat_at, finished_at)"
        " SELECT gen_random_uuid(), %s, s.project_id, s.feature_id, s.id, 'developer',"
        " 'implementation', CASE WHEN g %% 500 = 0 THEN 'running' WHEN g %% 3 = 0 THEN 'failed'"
        " ELSE 'succeeded' END, 1, now(), 'worker:bench', 1, 'brief',"
        " 'collected 7 items' || chr(10) || CASE WHEN g %% 3 = 0 THEN"
        " 'AssertionError: expected hello-world got Hello-World' ELSE '7 passed' END, '{}'::jsonb,"
        " '', 100, 50, 0.01, now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval,"  # noqa: E501
        " now(), CASE WHEN g %% 500 = 0 THEN NULL ELSE now() END"
        " FROM generate_series(1, %s) g JOIN orchestration_subtask s ON s.id = %s + g * 5 - 5",
        [ws, runs, s0],
    )
    cursor.execute(
        "SELECT min(id), max(id) FROM orchestration_agentrun WHERE workspace_id = %s", [ws]
    )
    r0, r1 = cursor.fetchone()
    # Events: mostly transitions and run events, spread over subtasks and 30 days; a few
    # carry a rare test name. Search vectors are built as services.events builds them.
    cursor.execute(
        "INSERT INTO orchestration_event (workspace_id, project_id, feature_id, subtask_id,"
        " run_id, kind, actor, message, data, created_at, search_vector)"
        " SELECT %s, s.project_id, s.feature_id, s.id, r.id, e.kind, 'orchestrator', e.message,"
        " '{}'::jsonb, now() - ((%s - g) * 2 || ' seconds')::interval,"
        " to_tsvector('english', e.message || ' ' || replace(e.kind, '.', ' ') || ' orchestrator'"
        "   || CASE WHEN r.id IS NOT NULL AND e.kind IN ('run.succeeded', 'run.failed')"
        "      THEN chr(10) || r.output ELSE '' END)"
        " FROM generate_series(1, %s) g"
        " JOIN orchestration_subtask s ON s.id = %s + (g::bigint * 7919) %% %s"
        " LEFT JOIN orchestration_agentrun r ON g %% 4 = 0 AND r.id = %s + (g / 4) %% (%s - %s + 1)"
        " CROSS JOIN LATERAL (SELECT"
        "   CASE WHEN g %% 4 = 0 THEN (CASE WHEN g %% 3 = 0 THEN 'run.failed' ELSE 'run.succeeded' END)"  # noqa: E501
        "        WHEN g %% 4 = 1 THEN 'subtask.transition' WHEN g %% 4 = 2 THEN 'testrun.finished'"
        "        ELSE 'run.claimed' END AS kind,"
        "   CASE WHEN g %% 4 = 0 THEN 'Implement run ' || (CASE WHEN g %% 3 = 0 THEN 'failed' ELSE 'succeeded' END)"  # noqa: E501
        "        WHEN g %% 4 = 1 THEN s.key || ' in_progress → testing (submit)'"
        "        WHEN g %% 4 = 2 THEN s.key || ': verify implementation '"
        "             || (CASE WHEN g %% 5 = 0 THEN 'failed: 6 passed, 1 failed'"
        "                 ELSE 'passed: 7 passed, 0 failed' END)"
        "             || (CASE WHEN g %% 50000 = 2 THEN ' test_unique_slug_appends_a_number' ELSE '' END)"  # noqa: E501
        "        ELSE 'Implement run started by worker:bench' END AS message) e",
        [ws, events, events, s0, subtasks, r0, r1, r0],
    )
    cursor.execute("ANALYZE")


def measure(client, path: str, repeat: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)  # warm the caches a running server would have warm
    times, queries = [], set()
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        queries.add(len(ctx.captured_queries))
    return times, max(queries)


def p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subtasks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="1,000 subtasks, 10,000 events")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.subtasks, args.events, args.repeat = 1_000, 10_000, 5
    url = own_database(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/codemaestro_bench")
    )
    setup_django(url)
    from django.test import Client
    from django.urls import reverse

    workspace, user = populate(args.subtasks, args.events, rebuild=args.rebuild)
    client = Client()
    client.force_login(user)
    code = workspace.code
    rows = []
    for name, path in (
        ("control room", reverse("dashboard:workspace", args=[code])),
        ("board", reverse("dashboard:board", args=[code])),
        ("board, one feature", reverse("dashboard:board", args=[code]) + "?risk=high"),
        ("states", reverse("dashboard:states", args=[code])),
        (
            "live re-sync (100 missed)",
            reverse("dashboard:live", args=[code])
            + "?view=room&after="
            + str(_nth_last_event(workspace, 100)),
        ),
    ):
        times, queries = measure(client, path, args.repeat)
        rows.append((name, times, queries, PAGE_TARGET_MS))
    for label, words in SEARCHES:
        path = reverse("dashboard:search", args=[code]) + "?" + _query(words)
        times, queries = measure(client, path, args.repeat)
        rows.append((f"search: {label}", times, queries, SEARCH_TARGET_MS))
    print(f"\n{args.subtasks:,} subtasks, {args.events:,} events, {args.repeat} requests each\n")
    print("| page | p50 ms | p95 ms | queries | target p95 |\n|---|---:|---:|---:|---:|")
    missed = False
    for name, times, queries, target in rows:
        p95 = p(times, 95)
        ok = p95 < target
        missed |= not ok
        print(
            f"| {name} | {statistics.median(times):.1f} | {p95:.1f} | {queries} | < {target:.0f} ms {'✓' if ok else '✗'} |"  # noqa: E501
        )
    return 2 if (missed and args.strict) else 0


def _query(words: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"q": words})


def _nth_last_event(workspace, n: int) -> int:
    from orchestration.models import Event

    ids = list(
        Event.objects.filter(workspace=workspace).order_by("-id").values_list("id", flat=True)[:n]
    )
    return ids[-1] - 1 if ids else 0


if __name__ == "__main__":
    sys.exit(main())
