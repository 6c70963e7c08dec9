"""A real MCP client session (the SDK's Client) over stdio and over streamable HTTP:
claim a run, read its briefing, submit a patch, report success — and the subtask moves on."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from accounts.services import token_create_for_agent
from agents import services
from orchestration.models import AgentRun, RunStatus, TestRun
from orchestration.services import runs
from tests.agents.conftest import PUNCTUATION_TEST, new_file_patch, punctuation_subtask
from tests.agents.servers import PYTHON, ROOT, free_port, server_env, serving
from tests.agents.test_patches import fix_patch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def call(client: Client, tool: str, **arguments: Any) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def work_one_run(client: Client, patch: str) -> dict:
    """What an agent does in one session; returns what it saw along the way."""
    tools = {tool.name for tool in (await client.list_tools()).tools}
    queued = await call(client, "list_runs")
    run = (await call(client, "claim_run", lease_seconds=120))["run"]
    briefing = await call(client, "get_briefing", run_id=run["id"])
    await call(client, "heartbeat", run_id=run["id"], lease_id=run["lease_id"])
    refused = await client.call_tool(
        "submit_patch", {"run_id": run["id"], "lease_id": run["lease_id"], "patch": "nonsense"}
    )
    published = await call(
        client, "submit_patch", run_id=run["id"], lease_id=run["lease_id"], patch=patch
    )
    finished = await call(
        client, "report_result", run_id=run["id"], lease_id=run["lease_id"], success=True
    )
    comments = await call(client, "read_review_comments", subtask_id=run["subtask"])
    return {
        "tools": tools, "queued": queued["runs"], "run": run, "briefing": briefing,
        "refused": refused, "published": published, "finished": finished,
        "comments": comments,
    }  # fmt: skip


def test_a_tester_agent_works_a_run_over_stdio(external_project, data_dir):
    # given: a started subtask whose tests run waits for Tara, and her agent token
    subtask = punctuation_subtask(external_project)
    _, key = token_create_for_agent(
        workspace=external_project.workspace, role="tester", name="tara-mcp"
    )
    server = StdioServerParameters(
        command=PYTHON,
        args=["-m", "agents.mcp_server", "--token", key],
        env=server_env(data_dir),
        cwd=str(ROOT),
    )
    patch = new_file_patch("tests/test_punctuation.py", PUNCTUATION_TEST)

    async def session() -> dict:
        async with Client(server) as client:
            return await work_one_run(client, patch)

    # when
    seen = anyio.run(session)
    # then: the tools are all there, and the session went through
    assert {
        "list_runs", "claim_run", "heartbeat", "get_briefing", "submit_patch", "report_result",
        "release_run", "ask_question", "list_questions", "read_review_comments",
    } <= seen["tools"]  # fmt: skip
    assert [r["id"] for r in seen["queued"]] == [seen["run"]["id"]]
    assert seen["briefing"]["subtask"]["key"] == "WC-1"
    assert seen["briefing"]["role"] == "tester"
    assert seen["refused"].is_error
    assert "patch_rejected" in seen["refused"].content[0].text
    assert seen["published"]["files"] == ["tests/test_punctuation.py"]
    assert seen["finished"]["status"] == "succeeded"
    assert seen["comments"] == {"comments": []}
    # and the subtask moved on: the red check failed as it must, Devon has a run
    subtask.refresh_from_db()
    assert (subtask.status, subtask.stage) == ("in_progress", "implementation")
    assert [t.status for t in TestRun.objects.filter(subtask=subtask)] == ["failed"]
    assert AgentRun.objects.filter(subtask=subtask, role="developer", status="queued").exists()


def tara_done(project) -> None:
    """Tara's step, straight through the services: the subtask waits for Devon."""
    run = runs.run_claim(
        workspace_id=project.workspace_id, role="tester", claimer=runs.Claimer("tara")
    )
    services.patch_submit(
        run=run,
        lease_id=run.lease_id,
        patch=new_file_patch("tests/test_punctuation.py", PUNCTUATION_TEST),
    )
    services.result_report(run=run, lease_id=run.lease_id, success=True, actor="tara")


def test_a_developer_agent_works_a_run_over_streamable_http(external_project, data_dir, tmp_path):
    # given: the tests are red and Devon's run is queued
    subtask = punctuation_subtask(external_project)
    tara_done(external_project)
    assert AgentRun.objects.get(subtask=subtask, role="developer").status == RunStatus.QUEUED
    _, key = token_create_for_agent(
        workspace=external_project.workspace, role="developer", name="devon-mcp"
    )
    port = free_port()
    argv = [PYTHON, "manage.py", "mcp_http", "--port", str(port)]
    patch = fix_patch(external_project.repo_path)

    async def session(url: str, token: str) -> dict:
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(60, read=300)
            ) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
        ):
            return await work_one_run(client, patch)

    async def unauthenticated(url: str) -> int:
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1})
            return response.status_code

    # when
    with serving(argv, server_env(data_dir), port, tmp_path / "mcp.log") as url:
        status_without_token = anyio.run(unauthenticated, url)
        seen = anyio.run(session, url, key)
    # then: no token, no entry; with one, the fix is published and verified
    assert status_without_token == 401
    assert seen["briefing"]["role"] == "developer"
    assert seen["briefing"]["log"]["testRuns"][0]["status"] == "failed"
    assert seen["finished"]["result"]["commit"] == seen["published"]["commit"]
    subtask.refresh_from_db()
    assert subtask.status == "ready_for_review"
    assert TestRun.objects.filter(subtask=subtask).latest("id").status == "passed"
