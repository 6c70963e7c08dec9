from __future__ import annotations

import threading

import pytest
from django.db import connection

from orchestration.errors import InvalidInput, TransitionRefused
from orchestration.models import Event, EventKind, Subtask, SubtaskStatus
from orchestration.models.subtasks import SUBTASK_TRANSITIONS
from orchestration.services import dependencies, transitions
from tests.factories import SubtaskFactory, set_status

ALL_PAIRS = [(state, name) for state in SubtaskStatus.values for name in SUBTASK_TRANSITIONS]
ALLOWED = [(s, n) for s, n in ALL_PAIRS if s in SUBTASK_TRANSITIONS[n][0]]
REFUSED = [(s, n) for s, n in ALL_PAIRS if s not in SUBTASK_TRANSITIONS[n][0]]


def test_lifecycle_matches_the_design_diagram():
    assert SUBTASK_TRANSITIONS == {
        "start": (("pending",), "in_progress"),
        "submit": (("in_progress",), "testing"),
        "pass_tests": (("testing",), "ready_for_review"),
        "fail_tests": (("testing",), "failed"),
        "retry": (("failed",), "retrying"),
        "retest": (("retrying",), "testing"),
        "escalate": (("failed",), "blocked"),
        "block": (("in_progress", "testing", "retrying"), "blocked"),
        "resume": (("blocked",), "in_progress"),
        "request_changes": (("ready_for_review",), "in_progress"),
        "complete": (("ready_for_review",), "completed"),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("state", "name"), ALLOWED)
def test_allowed_transition_moves_and_records_one_event(state, name):
    # given
    subtask = set_status(SubtaskFactory(), state)
    # when
    moved = transitions.subtask_transition(subtask=subtask, name=name, actor="user:test")
    # then
    target = SUBTASK_TRANSITIONS[name][1]
    assert moved.status == target
    assert Subtask.objects.get(pk=subtask.pk).status == target
    events = list(Event.objects.filter(subtask=subtask))
    assert len(events) == 1
    assert events[0].kind == EventKind.SUBTASK_TRANSITION
    assert events[0].data == {"transition": name, "from": state, "to": target, "reason": ""}


@pytest.mark.django_db
@pytest.mark.parametrize(("state", "name"), REFUSED)
def test_refused_transition_changes_nothing(state, name):
    # given
    subtask = set_status(SubtaskFactory(), state)
    before = Subtask.objects.filter(pk=subtask.pk).values().get()
    # when
    with pytest.raises(TransitionRefused) as refused:
        transitions.subtask_transition(subtask=subtask, name=name, actor="user:test")
    # then
    assert refused.value.details["allowed"] == [
        n for n, (sources, _) in SUBTASK_TRANSITIONS.items() if state in sources
    ]
    assert Subtask.objects.filter(pk=subtask.pk).values().get() == before
    assert not Event.objects.filter(subtask=subtask).exists()


@pytest.mark.django_db
def test_status_cannot_be_assigned_directly():
    subtask = SubtaskFactory()
    with pytest.raises(AttributeError):
        subtask.status = SubtaskStatus.COMPLETED


@pytest.mark.django_db
def test_unknown_transition_name_is_invalid_input():
    subtask = SubtaskFactory()
    with pytest.raises(InvalidInput, match="unknown transition 'teleport'"):
        transitions.subtask_transition(subtask=subtask, name="teleport", actor="user:test")
    assert not Event.objects.filter(subtask=subtask).exists()


@pytest.mark.django_db
def test_start_waits_for_unfinished_dependencies():
    # given
    first = SubtaskFactory(key="A")
    second = SubtaskFactory(key="B", project=first.project)
    dependencies.dependency_add(subtask=second, depends_on=first, actor="user:test")
    # when
    with pytest.raises(TransitionRefused, match="waiting on unfinished dependencies A"):
        transitions.subtask_transition(subtask=second, name="start", actor="user:test")
    # then
    assert Subtask.objects.get(pk=second.pk).status == SubtaskStatus.PENDING
    assert not Event.objects.filter(subtask=second, kind=EventKind.SUBTASK_TRANSITION).exists()


@pytest.mark.django_db
def test_retry_counts_the_attempt_and_block_keeps_the_reason():
    subtask = set_status(SubtaskFactory(), SubtaskStatus.FAILED)
    transitions.subtask_transition(subtask=subtask, name="retry", actor="orchestrator")
    assert Subtask.objects.get(pk=subtask.pk).attempts == 1

    other = set_status(SubtaskFactory(), SubtaskStatus.IN_PROGRESS)
    transitions.subtask_transition(
        subtask=other, name="block", actor="agent:devon", reason="which database?"
    )
    assert Subtask.objects.get(pk=other.pk).blocked_reason == "which database?"


@pytest.mark.django_db
def test_stale_copy_cannot_win_a_transition():
    # given: two copies of the same row, one of them moved on
    subtask = SubtaskFactory()
    stale = Subtask.objects.get(pk=subtask.pk)
    transitions.subtask_transition(subtask=subtask, name="start", actor="user:a")
    # when: the stale copy asks for the same transition
    with pytest.raises(TransitionRefused):
        transitions.subtask_transition(subtask=stale, name="start", actor="user:b")
    # then
    assert Event.objects.filter(subtask=subtask, kind=EventKind.SUBTASK_TRANSITION).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("callers", [2, 8, 32])
def test_concurrent_callers_of_one_transition_exactly_one_wins(callers):
    # given
    subtask = SubtaskFactory()
    barrier = threading.Barrier(callers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def call():
        barrier.wait()
        try:
            transitions.subtask_transition(subtask=subtask, name="start", actor="user:racer")
            result = "won"
        except TransitionRefused:
            result = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    # when
    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(outcomes) == ["refused"] * (callers - 1) + ["won"]
    assert Subtask.objects.get(pk=subtask.pk).status == SubtaskStatus.IN_PROGRESS
    assert Event.objects.filter(subtask=subtask, kind=EventKind.SUBTASK_TRANSITION).count() == 1
