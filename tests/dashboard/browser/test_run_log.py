"""A running agent's output appears on its run page line by line, in a real browser, while
the page stays as it is (no reload, no polling)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from orchestration.models import RunStatus
from orchestration.processes import run_process
from orchestration.realtime import RunLogStream
from tests.dashboard.browser.test_control_room import sign_in, watch_console
from tests.factories import RunFactory, SubtaskFactory

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

COMMAND = (
    "import time\n"
    "print('collecting 7 items', flush=True)\n"
    "time.sleep(1.5)\n"
    "print('7 passed in 0.12s', flush=True)\n"
)


def stream(run) -> None:
    """What the command executor does with a command's output, from a worker's thread."""
    live = RunLogStream(workspace_id=run.workspace_id, run_id=run.pk, run_code=str(run.code))
    try:
        run_process([sys.executable, "-c", COMMAND], cwd=Path.cwd(), env={}, timeout=30,
                    on_output=live.feed)  # fmt: skip
    finally:
        live.close()
        connection.close()


def test_the_run_page_shows_log_lines_as_the_agent_writes_them(stack, page: Page, artifacts):
    server, demo = stack
    run = RunFactory(subtask=SubtaskFactory(project=demo.project), status=RunStatus.RUNNING)
    errors = watch_console(page)
    sign_in(page, stack)
    page.goto(f"{server.url}/w/{demo.workspace.code}/runs/{run.code}/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.get_by_text("Waiting for output…")).to_be_visible()
    page.evaluate("window.__notReloaded = true")
    log = page.locator(f"#run-log-{run.code}")
    # when: the agent's command prints a line, works, prints another
    worker = threading.Thread(target=stream, args=(run,))
    worker.start()
    # then: the first line is there before the second is even written
    expect(log).to_contain_text("collecting 7 items", timeout=10_000)
    assert "7 passed" not in log.inner_text()
    page.screenshot(path=artifacts / "run-log-streaming.png", full_page=True)
    expect(log).to_contain_text("7 passed in 0.12s", timeout=10_000)
    worker.join(10)
    expect(page.get_by_text("Waiting for output…")).to_be_hidden()
    assert log.inner_text().count("collecting 7 items") == 1
    assert page.evaluate("window.__notReloaded") is True
    assert errors == []
