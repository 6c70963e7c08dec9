"""The autonomous cycle carried by real Celery worker processes, Redis and PostgreSQL —
including a worker killed mid-run and restarts of Redis and PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from accounts.models import AgentRole
from codemaestro.celery import app as celery_app
from orchestration.demo.catalogue import SLUG_V1
from orchestration.models import (
    AgentProfile,
    AgentRun,
    Event,
    EventKind,
    Executor,
    RunStatus,
    Subtask,
    SubtaskStatus,
    TestRun,
)
from orchestration.services import planning
from tests.cycle.conftest import branch_log
from tests.cycle.workers import Worker, fresh_connection, private_queue, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def real_workers(data_dir, tmp_path):
    """Tasks go through Redis to worker processes; every worker is stopped afterwards."""
    queue = private_queue()
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    started: list[Worker] = []
    name = f"cm-test-{uuid.uuid4().hex[:8]}@%h"

    def start(supervised: bool = False) -> Worker:
        worker = Worker(name, data_dir, tmp_path / "worker.log", queue, supervised).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    celery_app.conf.task_default_queue = "celery"


def slow_devon(tmp_path: Path, demo_project, *, first_sleep: float) -> Path:
    """Devon as a command: the first call sleeps (to be killed), later calls implement."""
    marker = tmp_path / "devon-started"
    script = tmp_path / "devon.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.write_text('1')\n"
        f"    time.sleep({first_sleep})\n"
        f"pathlib.Path('textkit/slug.py').write_text({SLUG_V1!r})\n"
    )
    AgentProfile.objects.filter(workspace=demo_project.workspace, role=AgentRole.DEVELOPER).update(
        executor=Executor.COMMAND,
        executor_config={"command": f"python {script}", "timeout": 120},
    )
    return marker


def request_feature(project):
    return planning.feature_request(project=project, title="Slugs", actor="user:alice")


def first_is_ready(feature) -> bool:
    subtask = Subtask.objects.filter(feature=feature, key="slug-1").first()
    return subtask is not None and subtask.status == SubtaskStatus.READY_FOR_REVIEW


def assert_each_step_happened_once(feature) -> None:
    """No handoff lost or doubled: one run per cause, one success event per succeeded run."""
    causes = Counter(
        AgentRun.objects.filter(feature=feature).exclude(cause_event_id=None)
        .values_list("cause_event_id", flat=True)
    )  # fmt: skip
    assert max(causes.values()) == 1
    for run in AgentRun.objects.filter(feature=feature, status=RunStatus.SUCCEEDED):
        assert Event.objects.filter(run=run, kind=EventKind.RUN_SUCCEEDED).count() == 1
    test_causes = Counter(
        TestRun.objects.filter(feature=feature).exclude(cause_event_id=None)
        .values_list("cause_event_id", flat=True)
    )  # fmt: skip
    assert not test_causes or max(test_causes.values()) == 1
    assert not AgentRun.objects.filter(feature=feature, status=RunStatus.RUNNING).exists()


def test_a_real_worker_carries_a_feature_to_ready_for_review(demo_project, real_workers):
    # given
    worker = real_workers()
    # when
    feature = request_feature(demo_project)
    # then
    wait_for(lambda: first_is_ready(feature), 120, worker.log)
    first = Subtask.objects.get(feature=feature, key="slug-1")
    assert first.attempts == 1  # the scripted bug, then the fix
    assert_each_step_happened_once(feature)
    assert all(run.claim_count == 1 for run in AgentRun.objects.filter(feature=feature))
    authors = [c.author_name.split(" ")[0] for c in branch_log(demo_project, feature.branch)]
    assert authors[:3] == ["Devon", "Devon", "Tara"]


def test_a_worker_killed_mid_run_loses_nothing(demo_project, real_workers, tmp_path):
    # given: Devon's first call hangs long enough to be killed
    marker = slow_devon(tmp_path, demo_project, first_sleep=60)
    worker = real_workers()
    feature = request_feature(demo_project)
    wait_for(marker.exists, 90, worker.log)
    # when: kill -9 the worker and its pool, then start it again under the same name
    worker.kill()
    worker = real_workers()
    # then: the run is redelivered, completes once, and the cycle goes on
    wait_for(lambda: first_is_ready(feature), 90, worker.log)
    devon = AgentRun.objects.get(feature=feature, step="implementation")
    assert (devon.status, devon.claim_count) == (RunStatus.SUCCEEDED, 2)
    assert Event.objects.filter(run=devon, kind=EventKind.RUN_LEASE_EXPIRED).count() == 1
    assert_each_step_happened_once(feature)


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, timeout=10)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
         "--save", "", "--appendonly", "no", "--dir", "/tmp",
         "--logfile", "/tmp/redis-codemaestro.log"],
        check=True, timeout=10,
    )  # fmt: skip
    wait_for(lambda: subprocess.run(["redis-cli", "ping"], capture_output=True).returncode == 0, 10)


def test_a_redis_restart_mid_cycle_loses_no_handoff(demo_project, real_workers, tmp_path):
    # given: a cycle under way, Devon busy for a few seconds
    marker = slow_devon(tmp_path, demo_project, first_sleep=4)
    worker = real_workers(supervised=True)
    feature = request_feature(demo_project)
    wait_for(marker.exists, 90, worker.log)
    # when: Redis restarts and forgets every queued message (the worker may die of it, as
    # kombu does when it cannot restore unacked messages; its supervisor restarts it)
    restart_redis()
    # then
    wait_for(lambda: first_is_ready(feature), 120, worker.log)
    assert_each_step_happened_once(feature)


def restart_postgres() -> None:
    cluster = subprocess.run(
        ["ls", "/etc/postgresql"], capture_output=True, text=True
    ).stdout.split()[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart", "-m", "fast"],
        check=True, timeout=60,
    )  # fmt: skip


def test_a_postgres_restart_mid_run_loses_no_completion(demo_project, real_workers, tmp_path):
    # given: Devon is working when the database goes away
    marker = slow_devon(tmp_path, demo_project, first_sleep=4)
    worker = real_workers(supervised=True)
    feature = request_feature(demo_project)
    wait_for(marker.exists, 90, worker.log)
    # when
    restart_postgres()
    fresh_connection()
    # then
    wait_for(lambda: first_is_ready(feature), 120, worker.log)
    devon = AgentRun.objects.get(feature=feature, step="implementation")
    assert devon.status == RunStatus.SUCCEEDED
    assert_each_step_happened_once(feature)
