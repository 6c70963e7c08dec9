"""A person's first minutes in the control room, in a real browser: the demo feature runs on
a real worker and the pages follow it live, without reloading. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import Subtask, SubtaskStatus
from tests.factories import SubtaskFactory, set_status

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CYCLE_MS = 150_000  #: plan, tests, red check, buggy attempt, retry, green


def watch_console(page: Page) -> list[str]:
    """Collect console errors and uncaught exceptions of the page."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


def sign_in(page: Page, stack) -> None:
    server, demo = stack
    page.goto(f"{server.url}/login/")
    page.get_by_label("Username").fill(demo.username)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def room_url(stack) -> str:
    server, demo = stack
    return f"{server.url}/w/{demo.workspace.code}/"


def test_the_first_minutes_in_the_control_room(stack, page, artifacts):
    errors = watch_console(page)
    sign_in(page, stack)
    expect(page).to_have_url(room_url(stack))
    waiting = waiting_for_review(stack)
    watch_the_demo_feature_live(page, artifacts)
    complete_from_the_board(page, waiting, artifacts)
    search_a_log_line(page, stack, artifacts)
    assert errors == []
    visit_every_page(page, stack, artifacts)


def watch_the_demo_feature_live(page: Page, artifacts) -> None:
    # given: the control room, and the board in a second tab, both live
    board = page.context.new_page()
    board_errors = watch_console(board)
    board.goto(page.url + "board/")
    expect(board.locator("#live-status")).to_have_attribute("data-state", "live")
    # Marks that survive only as long as neither page reloads.
    page.evaluate("window.__notReloaded = true")
    board.evaluate("window.__notReloaded = true")
    page.screenshot(path=artifacts / "01-control-room-empty.png", full_page=True)

    # when: a feature is requested
    page.get_by_label("What should be built?").fill("Slugs for titles")
    page.get_by_role("button", name="Request feature").click()

    # then: the timeline, the counts and the board follow the agents' work
    timeline = page.locator("#timeline")
    expect(page.locator("#new-feature")).to_contain_text("Orion is planning it")
    expect(timeline).to_contain_text("feature requested: Slugs for titles")
    expect(timeline).to_contain_text("Orion planned", timeout=60_000)
    expect(timeline.locator("li.kind-testsred")).not_to_have_count(0, timeout=CYCLE_MS)
    # Devon's first attempt carries the demo's scripted bug: red, then the retry is green.
    expect(timeline).to_contain_text("verify implementation failed", timeout=CYCLE_MS)
    expect(timeline).to_contain_text("verify implementation passed", timeout=CYCLE_MS)
    # Low risk with green tests is approved automatically; both subtasks complete.
    completed = page.locator("#counts .st-completed .n")
    expect(completed).to_have_text("2", timeout=CYCLE_MS)
    expect(page.locator("#features")).to_contain_text("2/2 done")
    page.screenshot(path=artifacts / "02-control-room-after-cycle.png", full_page=True)

    done_column = board.locator("#col-completed")
    expect(done_column.locator("article.card")).to_have_count(2, timeout=30_000)
    expect(done_column).to_contain_text("slug-1")
    expect(done_column).to_contain_text("slug-2")
    expect(done_column.locator(".badge").first).to_have_text("Completed")
    expect(board.locator("#col-testing article.card")).to_have_count(0)
    board.screenshot(path=artifacts / "03-board-after-cycle.png", full_page=True)

    assert page.evaluate("window.__notReloaded") is True
    assert board.evaluate("window.__notReloaded") is True
    assert board_errors == []
    board.close()


def waiting_for_review(stack) -> Subtask:
    """A subtask of the demo project, outside any feature, waiting for a reviewer."""
    _, demo = stack
    subtask = SubtaskFactory(project=demo.project, key="manual-1", title="Review the README")
    return set_status(subtask, SubtaskStatus.READY_FOR_REVIEW)


def complete_from_the_board(page: Page, waiting: Subtask, artifacts) -> None:
    page.get_by_role("link", name="Board").click()
    card = page.locator(f"#subtask-{waiting.code}")
    expect(page.locator("#col-ready_for_review")).to_contain_text("manual-1")
    # when: one click on an allowed transition (only those are offered)
    expect(card.get_by_role("button")).to_have_text(["Request changes", "Complete"])
    card.get_by_role("button", name="Complete").click()
    # then: the card moved to the completed column
    expect(page.locator("#col-completed")).to_contain_text("manual-1")
    expect(page.locator("#col-ready_for_review article.card")).to_have_count(0)
    page.screenshot(path=artifacts / "04-board-after-complete.png", full_page=True)


def search_a_log_line(page: Page, stack, artifacts) -> None:
    page.get_by_role("link", name="Search").click()
    # when: a line Devon's first (buggy) attempt wrote to its log
    page.get_by_label("Search words").fill("scripted bug")
    page.get_by_role("button", name="Search").click()
    # then
    results = page.locator("#results")
    expect(results.locator(".hits li").first).to_be_visible()
    expect(results).to_contain_text("Devon's run")
    expect(results.locator("mark").first).to_be_visible()
    expect(page).to_have_url(re.compile(r"search/\?q=scripted\+bug"))
    page.screenshot(path=artifacts / "05-search.png", full_page=True)
    # the hit opens the run with its log
    results.get_by_role("link", name="Devon's run").first.click()
    expect(page.locator("pre.log").first).to_contain_text("scripted bug")
    page.screenshot(path=artifacts / "06-run.png", full_page=True)


PAGES = ["", "board/", "states/", "tests/", "metrics/", "search/?q=slug"]


def visit_every_page(page: Page, stack, artifacts) -> None:
    """Each page, opened fresh, renders with no console error."""
    for path in PAGES:
        errors = watch_console(page)
        page.goto(room_url(stack) + path)
        page.wait_for_load_state("networkidle")
        name = path.split("/")[0] or "room"
        page.screenshot(path=artifacts / f"page-{name}.png", full_page=True)
        assert errors == [], (path, errors)
    # the detail pages, reached by clicking as a person would
    errors = watch_console(page)
    page.goto(room_url(stack))
    page.locator("#features a").first.click()
    expect(page.locator("svg.dag")).to_be_visible()
    page.screenshot(path=artifacts / "page-feature.png", full_page=True)
    page.locator("#feature-plan table a").first.click()
    expect(page.locator("#subtask-work")).to_be_visible()
    page.locator("details.run summary").first.click()
    expect(page.locator("details.run pre.log").first).to_be_visible()
    page.screenshot(path=artifacts / "page-subtask.png", full_page=True)
    assert errors == []
