from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connections
from django.test import AsyncClient

from accounts.models import Role
from accounts.services import token_create_for_user
from audit import exports
from audit.services import record_audit
from tests.factories import MembershipFactory, WorkspaceFactory


def url(workspace, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/v1/workspaces/{workspace.code}/audit/" + (f"?{query}" if query else "")


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def jsonl(response) -> list[dict]:
    return [json.loads(line) for line in body(response).splitlines()]


def test_jsonl_export_holds_exactly_the_half_open_range(api_as, workspace, entries_at):
    # given: entries at 10:00, 10:29:59.999999, 10:30 (from), 11:00, 11:30 (to), 11:45
    made = entries_at(workspace, [0, 29.99999999, 30, 60, 90, 105])
    entries_at(WorkspaceFactory(), [45])  # another workspace's entry inside the range
    client = api_as(Role.ADMIN)
    # when
    response = client.get(
        url(workspace, **{"from": "2026-11-20T10:30:00Z", "to": "2026-11-20T11:30:00Z"})
    )
    # then
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    rows = jsonl(response)
    assert [r["seq"] for r in rows] == [3, 4]
    assert rows[0] == {
        "seq": 3,
        "created_at": "2026-11-20T10:30:00.000000Z",
        "actor": "user:alice",
        "action": "member.role_changed",
        "target": "user:m30",
        "details": {"minute": 30},
        "prev_hash": made[1].hash,
        "hash": made[2].hash,
    }


def test_csv_export_has_a_header_and_the_same_rows(api_as, workspace, entries_at):
    entries_at(workspace, [0, 30, 60])
    response = api_as(Role.ADMIN).get(url(workspace, format="csv", **{"from": "2026-11-20T10:15"}))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="audit-{workspace.slug}.csv"'
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [r["seq"] for r in rows] == ["2", "3"]
    assert json.loads(rows[0]["details"]) == {"minute": 30}


def test_csv_cells_that_look_like_formulas_are_defused(api_as, workspace):
    # given: a username chosen to run in a spreadsheet
    record_audit(
        workspace=workspace, actor="=cmd|' /C calc'!A0", action="auth.login", target="user:-2+3"
    )
    # when
    response = api_as(Role.ADMIN).get(url(workspace, format="csv"))
    # then
    row = next(csv.DictReader(io.StringIO(body(response))))
    assert (row["actor"], row["target"]) == ("'=cmd|' /C calc'!A0", "user:-2+3")


def test_a_date_means_midnight_utc_and_a_plus_offset_survives_the_query_string(
    api_as, workspace, entries_at
):
    entries_at(workspace, [0, 60, 120])
    client = api_as(Role.ADMIN)
    # "+01:00" sent unencoded arrives as " 01:00": 11:00+01:00 is 10:00 UTC
    response = client.get(
        url(workspace, **{"from": "2026-11-20T11:30:00+01:00", "to": "2026-11-21"})
    )
    assert [r["seq"] for r in jsonl(response)] == [2, 3]


def test_export_streams_in_batches(api_as, workspace, entries_at, monkeypatch):
    monkeypatch.setattr(exports, "BATCH", 2)
    entries_at(workspace, [0, 1, 2, 3, 4])
    response = api_as(Role.ADMIN).get(url(workspace))
    chunks = list(response.streaming_content)
    assert [len(c.decode().splitlines()) for c in chunks] == [2, 2, 1]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"from": "yesterday"}, "from", "from must be an ISO 8601 date or date-time"),
        ({"to": "2026-13-01"}, "to", "to must be an ISO 8601 date or date-time"),
        ({"from": "2026-11-20", "to": "2026-11-20"}, "to", "to must be later than from"),
        ({"from": "2026-11-21", "to": "2026-11-20"}, "to", "to must be later than from"),
        ({"format": "xml"}, "format", "format must be one of jsonl, csv"),
    ],
)
def test_refuses_a_bad_range_or_format_with_a_clear_message(
    api_as, workspace, params, field, message
):
    response = api_as(Role.ADMIN).get(url(workspace, **params))
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert response.json()[field][0].startswith(message)


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.REVIEWER, Role.READER])
def test_members_who_are_not_admins_get_403(api_as, workspace, role):
    record_audit(workspace=workspace, actor="user:alice", action="auth.login")
    response = api_as(role).get(url(workspace))
    assert response.status_code == 403
    assert response.json() == {"detail": "only workspace admins may read the audit log"}


def test_agent_tokens_get_403(agent_api, workspace):
    assert agent_api("developer").get(url(workspace)).status_code == 403


def test_admins_of_another_workspace_get_404(api_as, workspace):
    # given: an admin elsewhere, and a workspace that does not exist at all
    other = WorkspaceFactory()
    client = api_as(Role.ADMIN, ws=other)
    # then: both look the same
    assert client.get(url(workspace)).status_code == 404
    missing = f"/api/v1/workspaces/{'0' * 8}-0000-0000-0000-{'0' * 12}/audit/"
    assert client.get(missing).status_code == 404
    assert client.get(url(other)).status_code == 200


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_export_streams_asynchronously_under_asgi():
    # given
    from asgiref.sync import sync_to_async

    @sync_to_async
    def setup():
        membership = MembershipFactory(role=Role.ADMIN)
        for i in range(3):
            record_audit(
                workspace=membership.workspace, actor="user:a", action="auth.login", target=str(i)
            )
        return membership.workspace, token_create_for_user(user=membership.user, name="t")[1]

    workspace, raw = await setup()
    # when
    response = await AsyncClient().get(url(workspace), headers={"Authorization": f"Bearer {raw}"})
    # then: an async iterator, so daphne sends batches as they are read
    assert response.status_code == 200, response.json()
    assert response.is_async
    lines = b"".join([c async for c in response.streaming_content]).decode().splitlines()
    assert [json.loads(line)["target"] for line in lines] == ["0", "1", "2"]
    await sync_to_async(connections.close_all)()  # the worker thread's, before the DB is dropped
