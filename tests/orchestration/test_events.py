from __future__ import annotations

import pytest

from orchestration.models import Event
from orchestration.models.events import AppendOnlyError
from orchestration.services.events import event_record
from tests.factories import SubtaskFactory


@pytest.fixture
def event(db):
    subtask = SubtaskFactory()
    return event_record(
        workspace_id=subtask.workspace_id, kind="subtask.created", message="made", subtask=subtask
    )


def test_event_records_its_project_from_the_subtask(event):
    assert event.project_id == event.subtask.project_id


def test_saving_an_existing_event_is_refused(event):
    event.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert Event.objects.get(pk=event.pk).message == "made"


def test_deleting_an_event_is_refused(event):
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert Event.objects.filter(pk=event.pk).exists()


def test_queryset_update_and_delete_are_refused(event):
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=event.pk).update(message="x")
    with pytest.raises(AppendOnlyError):
        Event.objects.all().delete()
    assert Event.objects.get(pk=event.pk).message == "made"


def test_deleting_a_workspace_takes_its_history_with_it(event):
    workspace = event.workspace
    workspace.delete()
    assert not Event.objects.filter(pk=event.pk).exists()
