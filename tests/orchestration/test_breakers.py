from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orchestration.models import AgentProfile, AgentRun, BreakerState, Event, EventKind, RunStatus
from orchestration.services import breakers, dispatch, execution
from tests.factories import RunFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile():
    return AgentProfile.objects.create(
        workspace=WorkspaceFactory(),
        name="Devon",
        role="developer",
        executor="command",
        executor_config={"command": "true"},
        breaker_threshold=2,
        breaker_cooldown_seconds=60,
    )


def state(profile) -> tuple[str, int]:
    profile.refresh_from_db()
    return profile.breaker_state, profile.consecutive_failures


def cool_down(profile) -> None:
    AgentProfile.objects.filter(pk=profile.pk).update(
        breaker_opened_at=timezone.now() - timedelta(seconds=61)
    )


def test_opens_after_the_threshold_of_consecutive_failures(profile):
    breakers.breaker_record_failure(profile)
    assert state(profile) == (BreakerState.CLOSED, 1)
    breakers.breaker_record_failure(profile)
    assert state(profile) == (BreakerState.OPEN, 2)
    assert Event.objects.filter(kind=EventKind.BREAKER).count() == 1


def test_a_success_resets_the_count_of_failures(profile):
    breakers.breaker_record_failure(profile)
    breakers.breaker_record_success(profile)
    breakers.breaker_record_failure(profile)
    assert state(profile) == (BreakerState.CLOSED, 1)


def test_an_open_breaker_refuses_work_until_its_cooldown_is_over(profile):
    # given
    breakers.breaker_record_failure(profile)
    breakers.breaker_record_failure(profile)
    run = RunFactory(
        profile=profile, subtask__project__workspace=profile.workspace, role="developer"
    )
    # when
    outcome = execution.run_execute(run.pk, worker="worker:test")
    # then
    assert outcome == "breaker open: run waits"
    run.refresh_from_db()
    assert (run.status, run.claim_count) == (RunStatus.QUEUED, 0)
    assert breakers.breaker_allows(profile) is False


def test_after_the_cooldown_exactly_one_caller_gets_the_trial(profile):
    breakers.breaker_record_failure(profile)
    breakers.breaker_record_failure(profile)
    cool_down(profile)
    answers = [breakers.breaker_allows(profile) for _ in range(5)]
    assert answers == [True, False, False, False, False]
    assert state(profile)[0] == BreakerState.HALF_OPEN


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_agree_on_a_single_trial(profile):
    breakers.breaker_record_failure(profile)
    breakers.breaker_record_failure(profile)
    cool_down(profile)
    answers: list[bool] = []
    barrier = threading.Barrier(8)

    def ask():
        barrier.wait()
        try:
            answers.append(breakers.breaker_allows(AgentProfile.objects.get(pk=profile.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] * 7 + [True]


def test_a_successful_trial_closes_and_releases_the_waiting_runs(profile):
    # given: open, cooled down, one trial granted, and runs waiting behind it
    breakers.breaker_record_failure(profile)
    breakers.breaker_record_failure(profile)
    waiting = RunFactory(profile=profile, subtask__project__workspace=profile.workspace)
    AgentRun.objects.filter(pk=waiting.pk).update(dispatched_at=timezone.now())
    cool_down(profile)
    assert breakers.breaker_allows(profile) is True
    # when
    breakers.breaker_record_success(profile)
    # then
    assert state(profile) == (BreakerState.CLOSED, 0)
    assert dispatch.runs_due_for_dispatch() == [waiting.pk]


def test_a_failed_trial_opens_the_breaker_again(profile):
    breakers.breaker_record_failure(profile)
    breakers.breaker_record_failure(profile)
    cool_down(profile)
    assert breakers.breaker_allows(profile) is True
    breakers.breaker_record_failure(profile)
    profile.refresh_from_db()
    assert profile.breaker_state == BreakerState.OPEN
    assert profile.breaker_opened_at > timezone.now() - timedelta(seconds=5)
    assert breakers.breaker_allows(profile) is False
