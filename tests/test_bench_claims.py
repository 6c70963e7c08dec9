"""The claim benchmark checks itself: its claimers take every run exactly once.

Runs modes (a) and (b) of the claim benchmark (bench/claiming/claimers.py) on 100 runs in the test
database, and mode (c) on 60 through the production HTTP server (bin/web); the spawned
processes get that database by URL (STACK.md trap 6).
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from bench.claiming import agents, claimers
from orchestration.models import AgentRun, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    "mode", [claimers.raw_sql_mode, claimers.service_mode], ids=["raw_sql", "run_claim"]
)
def test_four_claimer_processes_take_every_run_exactly_once(mode, settings):
    # given
    batch = claimers.queue_runs(count=100, label="test")
    database_url = claimers.database_url_for(settings.DATABASES["default"])
    # when
    result = claimers.check_claims(mode(database_url=database_url, batch=batch, processes=4), batch)
    # then
    assert result.errors == []
    assert (result.duplicates, result.losses) == (0, 0)
    assert sorted(result.claimed) == sorted(batch.run_ids)
    assert len(result.latencies) == 100
    runs = AgentRun.objects.filter(workspace_id=batch.workspace_id)
    assert set(runs.values_list("status", "claim_count")) == {(RunStatus.RUNNING, 1)}


def test_check_claims_counts_a_run_received_twice_and_a_run_never_claimed():
    # given: two runs, one claimed and reported by two clients, the other left queued
    batch = claimers.queue_runs(count=2, label="test")
    taken = min(batch.run_ids)
    AgentRun.objects.filter(pk=taken).update(status=RunStatus.RUNNING, claim_count=1)
    result = claimers.ModeResult(
        mode="fake", workers=2, claimed=[taken, taken], latencies=[], seconds=1
    )
    # when
    claimers.check_claims(result, batch)
    # then
    assert (result.duplicates, result.losses) == (1, 1)


def test_check_claims_reports_work_left_by_failed_clients_apart_from_losses():
    # given: two queued runs, and a client that failed before claiming either
    batch = claimers.queue_runs(count=2, label="test")
    result = claimers.ModeResult(
        mode="fake", workers=1, claimed=[], latencies=[], seconds=1, errors=["HTTP 500"]
    )
    # when
    claimers.check_claims(result, batch)
    # then
    assert (result.duplicates, result.losses) == (0, 0)
    assert result.notes == ["fake: 2 runs left queued by failed clients"]


@pytest.mark.skipif(
    connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
    reason="production settings need PostgreSQL and Redis",
)
def test_agents_claim_every_run_once_through_the_production_http_server(settings):
    # given: bin/web with one worker, as compose starts it, and four agents with tokens
    batch = claimers.queue_runs(count=60, label="test")
    database_url = claimers.database_url_for(settings.DATABASES["default"])
    # when
    result = agents.http_mode(
        database_url=database_url,
        redis_url=os.environ["REDIS_URL"],
        batch=batch,
        agents=4,
        web_processes=1,
    )
    claimers.check_claims(result, batch)
    # then
    assert result.errors == []
    assert (result.duplicates, result.losses) == (0, 0)
    assert sorted(result.claimed) == sorted(batch.run_ids)
    runs = AgentRun.objects.filter(workspace_id=batch.workspace_id)
    assert set(runs.values_list("status", "claim_count")) == {(RunStatus.RUNNING, 1)}
    assert runs.filter(claimed_by_token__isnull=True).count() == 0
