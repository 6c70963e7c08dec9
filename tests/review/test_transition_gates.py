"""Completing or sending back a subtask under review, from every entry point (board, API,
admin), goes through the change set's approval rules: nobody completes around them."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from accounts.models import Role
from accounts.permissions import Principal
from accounts.services import membership_set, project_role_set, token_create_for_user
from audit.models import AuditEntry
from orchestration.errors import NotAllowed
from orchestration.lock_objects import lock_subtask
from orchestration.models import Event, EventKind, Subtask
from orchestration.services import handoffs_table, transitions
from review.models import Approval, ChangeSet
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, set_status

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def under_review(setup, django_capture_on_commit_callbacks) -> tuple[Subtask, Approval]:
    """A medium-risk subtask whose tests passed: ready for review behind a pending gate."""
    subtask = setup.subtask(risk="medium")
    setup.push({"src/app.py": "x = 1\n"})
    set_status(subtask, "testing", stage="implementation")
    setup.green()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        handoffs_table.open_review(lock_subtask(subtask.pk), 0)
    subtask.refresh_from_db()
    gate = Approval.objects.get(kind="merge")
    assert (subtask.status, gate.state) == ("ready_for_review", "pending")
    return subtask, gate


def _api(user):
    _, raw = token_create_for_user(user=user, name="test")
    return client_for(raw)


def _filer_as(setup, workspace, role: str):
    membership_set(workspace=workspace, user=setup.filer, role=role)
    return setup.filer


def _transition_events(subtask) -> int:
    return Event.objects.filter(subtask=subtask, kind=EventKind.SUBTASK_TRANSITION).count()


def _assert_nothing_changed(subtask, gate, events_before: int) -> None:
    subtask.refresh_from_db()
    gate.refresh_from_db()
    assert (subtask.status, gate.state) == ("ready_for_review", "pending")
    assert _transition_events(subtask) == events_before
    assert not AuditEntry.objects.filter(action="approval.granted").exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.REVIEWER])
def test_the_filer_cannot_complete_through_the_api_whatever_their_role(
    setup, workspace, under_review, role
):
    # given: the person who filed the feature also holds the review right
    subtask, gate = under_review
    events = _transition_events(subtask)
    client = _api(_filer_as(setup, workspace, role))
    # when
    response = client.post(f"/api/v1/subtasks/{subtask.code}/transitions/complete/")
    # then
    assert response.status_code == 403
    assert response.json() == {
        "detail": "the person who filed the feature cannot approve its changes",
        "code": "forbidden",
    }
    _assert_nothing_changed(subtask, gate, events)


def test_a_reviewer_completing_through_the_api_approves_the_gate_and_the_branch_merges(
    setup, under_review, django_capture_on_commit_callbacks
):
    # given
    subtask, gate = under_review
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = _api(setup.reviewer).post(
            f"/api/v1/subtasks/{subtask.code}/transitions/complete/"
        )
    # then: the decision is the gate's, by this reviewer, and the change set merged
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    gate.refresh_from_db()
    assert (gate.state, gate.decided_by, gate.auto) == ("approved", setup.reviewer, False)
    assert ChangeSet.objects.get().status == "merged"
    granted = AuditEntry.objects.get(action="approval.granted")
    assert (granted.actor, granted.target) == (
        f"user:{setup.reviewer.username}",
        f"approval:{gate.code}",
    )
    merged = AuditEntry.objects.get(action="merge.done")
    assert merged.details["approved_by"] == f"user:{setup.reviewer.username}"


def test_request_changes_through_the_api_is_the_gates_decision(setup, under_review):
    subtask, gate = under_review
    response = _api(setup.reviewer).post(
        f"/api/v1/subtasks/{subtask.code}/transitions/request_changes/",
        {"reason": "split the function"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "in_progress"
    gate.refresh_from_db()
    assert (gate.state, gate.note) == ("changes_requested", "split the function")
    entry = AuditEntry.objects.get(action="changes.requested")
    assert entry.actor == f"user:{setup.reviewer.username}"


def test_completing_against_a_decided_gate_answers_409(setup, under_review):
    # given: changes were requested, and the subtask is back without a new push
    subtask, _ = under_review
    client = _api(setup.reviewer)
    client.post(f"/api/v1/subtasks/{subtask.code}/transitions/request_changes/")
    set_status(subtask, "ready_for_review")
    # when
    response = client.post(f"/api/v1/subtasks/{subtask.code}/transitions/complete/")
    # then
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "the merge approval of revision 1 is changes requested; "
        "decide on the change set's latest revision"
    )
    subtask.refresh_from_db()
    assert subtask.status == "ready_for_review"


def test_the_filer_cannot_complete_from_the_board(setup, workspace, under_review):
    # given
    subtask, gate = under_review
    events = _transition_events(subtask)
    client = Client()
    client.force_login(_filer_as(setup, workspace, Role.ADMIN))
    url = reverse("dashboard:subtask-transition", args=[workspace.code, subtask.code, "complete"])
    # when
    response = client.post(url + "?from=board", **HTMX)
    # then: the board comes back with the reason shown, as a 403 (htmx swaps it in too)
    assert response.status_code == 403
    assert "the person who filed the feature cannot approve its changes" in (
        response.content.decode()
    )
    _assert_nothing_changed(subtask, gate, events)


def test_a_reviewer_completes_from_the_board_by_approving(setup, workspace, under_review):
    subtask, gate = under_review
    client = Client()
    client.force_login(setup.reviewer)
    url = reverse("dashboard:subtask-transition", args=[workspace.code, subtask.code, "complete"])
    response = client.post(url + "?from=board", **HTMX)
    assert response.status_code == 200
    subtask.refresh_from_db()
    gate.refresh_from_db()
    assert (subtask.status, gate.state, gate.decided_by) == (
        "completed",
        "approved",
        setup.reviewer,
    )


def test_the_admin_action_cannot_complete_a_subtask_under_review(setup, under_review):
    # given: a superuser in Django admin
    subtask, gate = under_review
    events = _transition_events(subtask)
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    # when
    response = client.post(
        reverse("admin:orchestration_subtask_changelist"),
        {"action": "transition_complete", "_selected_action": [subtask.pk]},
        follow=True,
    )
    # then
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [
        f"{subtask.key}: {subtask.key} is under review: only a reviewer's decision on its "
        "change set completes it or sends it back"
    ]
    _assert_nothing_changed(subtask, gate, events)


def test_no_internal_caller_completes_a_subtask_under_review_without_a_person(under_review):
    subtask, gate = under_review
    with pytest.raises(NotAllowed):
        transitions.subtask_transition(subtask=subtask, name="complete", actor="orchestrator")
    _assert_nothing_changed(subtask, gate, _transition_events(subtask))


def test_without_a_change_set_the_filer_still_cannot_complete(setup, workspace):
    # given: a feature subtask waiting for review whose branch has no change set
    subtask = set_status(setup.subtask(), "ready_for_review")
    filer = _filer_as(setup, workspace, Role.REVIEWER)
    # when
    with pytest.raises(NotAllowed) as refused:
        transitions.subtask_transition(
            subtask=subtask, name="complete", actor="t", principal=Principal(user=filer)
        )
    # then: refused; someone else may complete it
    assert refused.value.message == "the person who filed the feature cannot approve its changes"
    other = MembershipFactory(workspace=workspace, role=Role.REVIEWER).user
    moved = transitions.subtask_transition(
        subtask=subtask, name="complete", actor="t", principal=Principal(user=other)
    )
    assert moved.status == "completed"


def test_a_reviewer_whose_project_role_is_reader_cannot_approve(setup, under_review):
    # given: a reviewer of the workspace, but only a reader on this project
    subtask, gate = under_review
    project_role_set(project=setup.project, user=setup.reviewer, role=Role.READER, actor="t")
    # when
    with pytest.raises(NotAllowed) as refused:
        transitions.subtask_transition(
            subtask=subtask, name="complete", actor="t", principal=Principal(user=setup.reviewer)
        )
    # then
    assert refused.value.message == "only reviewers and admins decide reviews"
    _assert_nothing_changed(subtask, gate, _transition_events(subtask))
