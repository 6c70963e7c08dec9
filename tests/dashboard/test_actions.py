"""The pages' POST actions: one service each, the updated partial back, errors visible."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from orchestration.models import Event, EventKind, FeatureRequest, SubtaskStatus
from tests.factories import SubtaskFactory, set_status

HTMX = {"HTTP_HX_REQUEST": "true"}


def transition_url(subtask, name, **query):
    url = reverse("dashboard:subtask-transition", args=[subtask.workspace.code, subtask.code, name])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_an_author_starts_a_subtask_from_the_board_and_gets_the_columns_back(project, signed_in):
    # given
    subtask = SubtaskFactory(project=project)
    client = signed_in(Role.AUTHOR)
    # when
    response = client.post(transition_url(subtask, "start", **{"from": "board"}), **HTMX)
    # then
    subtask.refresh_from_db()
    assert response.status_code == 200
    assert subtask.status == SubtaskStatus.IN_PROGRESS
    html = response.content.decode()
    assert 'id="board-columns"' in html
    column = html[html.index('id="col-in_progress"') :]
    assert f'id="subtask-{subtask.code}"' in column
    assert Event.objects.filter(subtask=subtask, kind=EventKind.SUBTASK_TRANSITION).count() == 1


def test_a_refused_transition_is_a_visible_message_and_changes_nothing(project, signed_in):
    # given: a completed subtask cannot be started
    subtask = set_status(SubtaskFactory(project=project), SubtaskStatus.COMPLETED)
    client = signed_in(Role.AUTHOR)
    # when
    response = client.post(transition_url(subtask, "start"), **HTMX)
    # then
    subtask.refresh_from_db()
    assert response.status_code == 409  # htmx still swaps the message in (base.html)
    assert "cannot start a subtask that is completed" in response.content.decode()
    assert subtask.status == SubtaskStatus.COMPLETED
    assert not Event.objects.filter(subtask=subtask).exists()


@pytest.mark.parametrize(
    ("role", "name", "allowed"),
    [
        (Role.READER, "start", False),
        (Role.REVIEWER, "start", False),
        (Role.AUTHOR, "start", True),
        (Role.AUTHOR, "complete", False),
        (Role.REVIEWER, "complete", True),
        (Role.ADMIN, "complete", True),
    ],
)
def test_transitions_follow_the_role(project, signed_in, role, name, allowed):
    # given
    state = SubtaskStatus.PENDING if name == "start" else SubtaskStatus.READY_FOR_REVIEW
    subtask = set_status(SubtaskFactory(project=project), state)
    client = signed_in(role)
    # when
    response = client.post(transition_url(subtask, name), **HTMX)
    # then
    subtask.refresh_from_db()
    assert response.status_code == (200 if allowed else 403)
    assert (subtask.status != state) is allowed


def test_outsiders_cannot_transition(project, outsider_client):
    subtask = SubtaskFactory(project=project)
    response = outsider_client.post(transition_url(subtask, "start"), **HTMX)
    subtask.refresh_from_db()
    assert response.status_code == 404
    assert subtask.status == SubtaskStatus.PENDING


def test_the_board_only_offers_the_transitions_the_role_allows(project, signed_in):
    # given
    set_status(SubtaskFactory(project=project, key="rev-1"), SubtaskStatus.READY_FOR_REVIEW)
    board = reverse("dashboard:board", args=[project.workspace.code])
    # then: an author may not complete, a reviewer may, a reader sees no button
    assert b">Complete</button>" not in signed_in(Role.AUTHOR).get(board).content
    assert b">Complete</button>" in signed_in(Role.REVIEWER).get(board).content
    assert b"hx-post" not in signed_in(Role.READER).get(board).content


def test_requesting_a_feature_without_a_title_says_what_to_do(project, signed_in):
    client = signed_in(Role.AUTHOR)
    response = client.post(
        reverse("dashboard:feature-new", args=[project.workspace.code]),
        {"project": project.code, "title": "  "},
        **HTMX,
    )
    assert response.status_code == 200
    assert "title must not be empty" in response.content.decode()
    assert not FeatureRequest.objects.exists()


def test_requesting_a_feature_records_it_and_starts_planning(project, signed_in):
    client = signed_in(Role.AUTHOR)
    response = client.post(
        reverse("dashboard:feature-new", args=[project.workspace.code]),
        {"project": project.code, "title": "Slugs for titles"},
        **HTMX,
    )
    feature = FeatureRequest.objects.get()
    assert response.status_code == 200
    assert "Orion is planning it" in response.content.decode()
    assert feature.title == "Slugs for titles"
    assert feature.created_by == client.user


def test_a_reader_cannot_request_features(project, signed_in):
    response = signed_in(Role.READER).post(
        reverse("dashboard:feature-new", args=[project.workspace.code]),
        {"project": project.code, "title": "x"},
    )
    assert response.status_code == 403
    assert not FeatureRequest.objects.exists()
