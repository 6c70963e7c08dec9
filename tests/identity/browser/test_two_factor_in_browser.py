"""A person turns on two-factor and signs in with it, in chromium (Playwright)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from identity import totp
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Sign in").click()


def test_enrol_then_sign_in_with_a_code(page: Page, live_server, transactional_db, artifacts):
    UserFactory(username="ada")
    base = live_server.url
    # enrol: read the key off the page, as someone typing it into an app would
    sign_in(page, base, "ada")
    page.goto(f"{base}/account/two-factor/enrol/")
    expect(page.locator("figure.qr svg")).to_be_visible()
    secret = page.locator("#totp-key").inner_text()
    page.get_by_label("Code").fill(totp.code_at(secret, time.time() - totp.STEP_SECONDS))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.screenshot(path=artifacts / "identity-recovery-codes.png")
    # sign out, then in again: the password alone is not enough
    page.get_by_role("button", name="Sign out ada").click()
    sign_in(page, base, "ada")
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    page.get_by_label("Code").fill(totp.code_at(secret, time.time()))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Sign out ada")).to_be_visible()
