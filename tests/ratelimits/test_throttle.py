from __future__ import annotations

import threading
import time

import httpx
import pytest

from accounts.models import Role
from accounts.services import token_create_for_agent, token_create_for_user
from ratelimits.models import RateCounter, WorkspaceRateLimit
from ratelimits.services import rate_limit_set
from tests.conftest import client_for
from tests.factories import MembershipFactory, WorkspaceFactory


def limit(workspace, *, per_workspace=None, per_token=None) -> None:
    rate_limit_set(
        workspace=workspace,
        requests_per_minute=per_workspace,
        token_requests_per_minute=per_token,
        actor="system",
    )


def agent(workspace, name="bot") -> tuple[str, object]:
    _, raw = token_create_for_agent(workspace=workspace, role="developer", name=name)
    return raw, client_for(raw)


def ws_url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.code}/"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_50_concurrent_requests_against_a_limit_of_10_admit_exactly_10(backend, live_server):
    # given: a workspace allowing 10 requests a minute, and 50 agents' requests at once
    workspace = WorkspaceFactory()
    limit(workspace, per_workspace=10)
    keys = [agent(workspace, f"bot{i}")[0] for i in range(5)]
    barrier = threading.Barrier(50)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        headers = {"Authorization": f"Bearer {keys[n % 5]}"}
        with httpx.Client(base_url=live_server.url, timeout=30) as client:
            barrier.wait()
            response = client.get(ws_url(workspace), headers=headers)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(50)]
    # when
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    # then: one window (the burst took well under a minute), so exactly 10 went through
    assert elapsed < 50
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 10 + [429] * 40
    refused = [r for r in results if r.status_code == 429]
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)
    body = refused[0].json()
    assert body["code"] == "rate_limited" and body["scope"] == "workspace" and body["limit"] == 10
    assert body["detail"].startswith("rate limit reached: 10 requests per minute for this ")


def test_workspaces_are_limited_independently(backend, db):
    # given: A and B each allow 3 requests a minute
    a, b = WorkspaceFactory(), WorkspaceFactory()
    limit(a, per_workspace=3)
    limit(b, per_workspace=3)
    _, client_a = agent(a)
    _, client_b = agent(b)
    # when: A uses its three and one more
    assert [client_a.get(ws_url(a)).status_code for _ in range(4)] == [200, 200, 200, 429]
    # then: B still has all of its own
    assert [client_b.get(ws_url(b)).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_tokens_of_one_workspace_are_limited_independently(backend, db):
    workspace = WorkspaceFactory()
    limit(workspace, per_token=2)
    _, first = agent(workspace, "one")
    _, second = agent(workspace, "two")
    assert [first.get(ws_url(workspace)).status_code for _ in range(3)] == [200, 200, 429]
    refused = first.get(ws_url(workspace))
    assert refused.json()["scope"] == "token" and refused.json()["limit"] == 2
    assert [second.get(ws_url(workspace)).status_code for _ in range(3)] == [200, 200, 429]


def test_a_person_using_a_workspace_counts_towards_it_but_an_outsider_does_not(backend, db):
    # given: a workspace allowing 2 requests a minute
    workspace = WorkspaceFactory()
    limit(workspace, per_workspace=2)
    member = MembershipFactory(workspace=workspace, role=Role.READER).user
    person = client_for(token_create_for_user(user=member, name="t")[1])
    outsider = client_for(token_create_for_user(user=MembershipFactory().user, name="o")[1])
    # when: the outsider knocks (404, not charged), the member uses both requests
    assert [outsider.get(ws_url(workspace)).status_code for _ in range(3)] == [404] * 3
    assert [person.get(ws_url(workspace)).status_code for _ in range(2)] == [200, 200]
    # then: the workspace is spent for its agents too
    response = agent(workspace)[1].get(ws_url(workspace))
    assert response.status_code == 429 and response.json()["scope"] == "workspace"


def test_a_new_window_admits_again(backend, db, short_window):
    workspace = WorkspaceFactory()
    limit(workspace, per_workspace=1)
    _, client = agent(workspace)
    assert client.get(ws_url(workspace)).status_code == 200
    refused = client.get(ws_url(workspace))
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    time.sleep(1.05)
    assert client.get(ws_url(workspace)).status_code == 200


def test_the_agent_api_is_limited_too(backend, db):
    workspace = WorkspaceFactory()
    limit(workspace, per_token=1)
    _, client = agent(workspace)
    assert client.get("/api/agent/runs").status_code != 429
    assert client.get("/api/agent/runs").status_code == 429


def test_defaults_apply_without_a_workspace_row(backend, db, settings):
    settings.RATELIMIT = {**settings.RATELIMIT, "WORKSPACE_PER_MINUTE": 2}
    workspace = WorkspaceFactory()
    assert not WorkspaceRateLimit.objects.exists()
    _, client = agent(workspace)
    assert [client.get(ws_url(workspace)).status_code for _ in range(3)] == [200, 200, 429]


def test_sql_counters_are_one_row_per_counter(db, settings):
    settings.REDIS_URL = ""
    workspace = WorkspaceFactory()
    _, client = agent(workspace)
    for _ in range(3):
        client.get(ws_url(workspace))
    assert sorted(RateCounter.objects.values_list("hits", flat=True)) == [3, 3]


def test_requests_go_through_with_a_warning_while_redis_is_unreachable(
    db, settings, monkeypatch, caplog
):
    # given: a Redis nobody listens on (port 1)
    from ratelimits import counters

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(counters, "_redis_script", None)
    workspace = WorkspaceFactory()
    limit(workspace, per_workspace=1)
    _, client = agent(workspace)
    # when
    statuses = [client.get(ws_url(workspace)).status_code for _ in range(2)]
    # then: refusing every call would take the API down with Redis
    assert statuses == [200, 200]
    assert "rate limiting skipped, Redis unavailable: ConnectionError" in caplog.text
