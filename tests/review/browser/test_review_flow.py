"""A reviewer opens a diff, comments inline, a second browser sees the comment appear live
(pushed through the websocket, not polled), the reviewer approves, and the branch merges."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect

import gitops
from orchestration.lock_objects import lock_subtask
from orchestration.services import handoffs_table
from review.models import ChangeSet
from tests.factories import set_status

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.django_db(transaction=True),
]

CODE = "".join(f"LIMIT_{n} = {n * 10}  # tuned by hand\n" for n in range(1, 31))


def signed_in(browser: Browser, user, server) -> BrowserContext:
    client = Client()
    client.force_login(user)
    context = browser.new_context(base_url=server.url)
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": server.url}])
    return context


def watch_console(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


@pytest.fixture
def waiting_changeset(setup):
    """A medium-risk change set whose tests passed: it waits for a reviewer."""
    subtask = setup.subtask(risk="medium")
    setup.push({"src/limits.py": CODE, "docs/limits.md": "# Limits\n\nTuned by hand.\n"})
    set_status(subtask, "testing", stage="implementation")
    setup.green()
    with transaction.atomic():
        handoffs_table.open_review(lock_subtask(subtask.pk), 0)
    return ChangeSet.objects.get()


def test_review_comment_live_approve_and_merge(
    browser, setup, waiting_changeset, served, artifacts
):
    url = f"/review/c/{waiting_changeset.code}/"
    reviewer = signed_in(browser, setup.reviewer, served).new_page()
    watcher = signed_in(browser, setup.filer, served).new_page()
    errors = watch_console(reviewer) + watch_console(watcher)
    pulls: list[str] = []
    watcher.on("request", lambda r: pulls.append(r.url) if "/poll/" in r.url else None)

    # given: both people have the change set open, each page on its websocket
    reviewer.goto(url)
    watcher.goto(url)
    expect(reviewer.locator("#rv-live")).to_have_attribute("data-state", "live")
    expect(watcher.locator("#rv-live")).to_have_attribute("data-state", "live")
    watcher.wait_for_timeout(500)  # the pull every page makes once connected
    pulls_before = len(pulls)
    limits = reviewer.locator('section.rv-file[data-path="src/limits.py"]')
    expect(limits.locator("table.rv-diff")).to_be_visible()
    expect(reviewer.locator("#rv-status")).to_contain_text("Medium risk")
    watcher.evaluate("window.__notReloaded = true")
    reviewer.screenshot(path=artifacts / "review-01-diff.png", full_page=True)

    # and the watcher has started a comment of their own further down the same file
    watched = watcher.locator('section.rv-file[data-path="src/limits.py"]')
    watched.locator('td.ln[data-s="new"][data-l="12"]').click()
    watched.locator("tr.rv-form textarea").fill("draft: is 120 right?")

    # when: the reviewer clicks line 7 of the new file and writes a comment
    limits.locator('td.ln[data-s="new"][data-l="7"]').click()
    form = limits.locator("tr.rv-form form")
    expect(form).to_be_visible()
    form.locator("textarea").fill("Why **70**? <script>window.__pwned = 1</script>")
    form.get_by_role("button", name="Comment").click()

    # then: the thread shows under line 7, with the Markdown rendered and the script inert
    thread = limits.locator("tr.rv-thread")
    expect(thread).to_contain_text("Why 70?")
    expect(thread.locator(".md strong")).to_have_text("70")
    reviewer.screenshot(path=artifacts / "review-02-commented.png", full_page=True)

    # and the second browser sees it appear, without reloading, well before any fallback
    # poll (10 s): the websocket announced it and the page pulled it once
    seen = watcher.locator('section.rv-file[data-path="src/limits.py"] tr.rv-thread')
    expect(seen).to_contain_text("Why 70?", timeout=5_000)
    assert watcher.evaluate("window.__notReloaded") is True
    assert len(pulls) - pulls_before >= 1
    # the file's body was replaced under the watcher's draft, which survived it
    expect(watched.locator("tr.rv-form textarea")).to_have_value("draft: is 120 right?")
    assert watcher.evaluate("window.__pwned") is None
    watcher.screenshot(path=artifacts / "review-03-seen-live.png", full_page=True)

    # and a reply and a resolution from the reviewer show up live too
    thread.locator("textarea").fill("Measured under load: 70 holds.")
    thread.get_by_role("button", name="Reply").click()
    expect(seen).to_contain_text("Measured under load", timeout=5_000)
    limits.locator("tr.rv-thread").get_by_role("button", name="Resolve").click()
    expect(seen.locator(".badge.cstate-resolved")).to_have_text("Resolved", timeout=5_000)

    # when: the reviewer approves
    reviewer.locator("#rv-status").get_by_role("button", name="Approve").click()

    # then: the gate opens and the branch merges into main
    expect(reviewer.locator("#rv-status .badge[data-status]")).to_have_text("Merged")
    expect(watcher.locator("#rv-status .badge[data-status]")).to_have_text("Merged", timeout=15_000)
    reviewer.screenshot(path=artifacts / "review-04-merged.png", full_page=True)
    changeset = ChangeSet.objects.get()
    assert changeset.status == "merged"
    assert gitops.head_commit(setup.repo, "main") == changeset.merged_sha
    assert errors == []
