"""The switcher and the Members & access page in chromium: htmx loads, swaps and errors."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from accounts.models import ApiToken, Role, hash_token
from tests.factories import MembershipFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_an_admin_switches_workspace_and_creates_a_token_shown_once(page, live_server, artifacts):
    home = WorkspaceFactory(name="Home base")
    admin = MembershipFactory(workspace=home, role=Role.ADMIN).user
    MembershipFactory(workspace=WorkspaceFactory(name="Side quest"), user=admin, role=Role.READER)
    WorkspaceFactory(name="Not mine")
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/w/{home.code}/")
    # the switcher lists every workspace of the user once opened, and only those
    page.locator(".ws-switcher summary").click()
    switcher = page.locator(".ws-switcher ul")
    expect(switcher.get_by_role("link", name="Side quest")).to_be_visible()
    expect(switcher).not_to_contain_text("Not mine")
    page.screenshot(path=str(artifacts / "workspace-switcher.png"))
    page.locator(".ws-switcher summary").click()  # closed again
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members & access")).to_be_visible()
    # a form error comes back in place, with its message
    page.get_by_role("button", name="Create token").click()  # the browser checks "required"
    page.locator("#id_name").fill("x")
    page.locator("#id_name").evaluate("el => el.removeAttribute('maxlength')")
    page.locator("#id_name").fill("y" * 130)
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#access-panel")).to_contain_text("at most 120 characters")
    page.locator("#id_name").fill("ci-runner")
    page.get_by_role("button", name="Create token").click()
    revealed = page.get_by_test_id("revealed")
    expect(revealed).to_contain_text("cm_")
    raw = revealed.inner_text().strip()
    assert re.fullmatch(r"cm_[A-Za-z0-9_-]+", raw)
    assert ApiToken.objects.get(name="ci-runner").key_hash == hash_token(raw)
    page.screenshot(path=str(artifacts / "members-and-access.png"), full_page=True)
    page.reload()
    expect(page.locator("#access-panel")).not_to_contain_text(raw)
    expect(page.locator("#access-panel")).to_contain_text("ci-runner")
