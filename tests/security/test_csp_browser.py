"""Every page under the real Content-Security-Policy in chromium: no violation at all.

The pages are the matrix's own GET pages (tests/security/endpoints.py), so a new page is
checked as soon as it exists. A violation means inline script or style, an inline event
handler, eval, or a request to another origin: each one is listed with its page.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from tests.browser import artifacts, browser_type_launch_args  # noqa: F401 (fixtures)
from tests.security.endpoints import POLICY, all_endpoints, url_for
from tests.security.world import PEOPLE, build_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(240),
    pytest.mark.django_db(transaction=True),
]

# Recorded in the page before any of its own code runs.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || "?"}:${e.lineNumber} ${(e.sample || "").slice(0, 60)}`);
});
document.addEventListener("htmx:evalDisallowedError", () => window.__csp.push("htmx eval"));
"""


def _pages(world) -> list[str]:
    urls = []
    for endpoint in all_endpoints():
        rules = POLICY.get(endpoint.key)
        if endpoint.method == "GET" and endpoint.is_page and rules and rules[0].browse:
            urls.append(url_for(endpoint, rules[0], world.own))
    # (the API's one HTML page: Swagger UI, with our template's external stylesheet)
    return [*sorted(set(urls)), "/api/docs/"]


def test_no_page_breaks_the_content_security_policy(browser, live_server, tmp_path):
    # given: two workspaces' worth of objects, and their admin signed in
    world = build_world(tmp_path)
    client = Client()
    client.force_login(world.own.users[PEOPLE[0]])
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(base_url=live_server.url)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie,
                          "url": live_server.url}])  # fmt: skip
    context.add_init_script(WATCH)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security" in m.text else 0)
    # when: each page loads and htmx has processed it
    violations: dict[str, list[str]] = {}
    visited = _pages(world)
    for url in visited:
        console.clear()
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status < 500, url
        if url == "/api/docs/":  # its script must have run: the schema is rendered
            page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        page.wait_for_timeout(150)
        found = page.evaluate("window.__csp || []") + console
        if found:
            violations[url] = found
    assert len(visited) >= 25, visited
    # then: none — and the watcher does see one when an inline script is planted
    page.evaluate("document.head.append(Object.assign(document.createElement('script'),"
                  " {textContent: 'window.__ran = 1'}))")  # fmt: skip
    page.wait_for_timeout(100)
    assert page.evaluate("window.__ran") is None
    assert page.evaluate("window.__csp")[0].startswith("script-src")
    assert not violations, "\n".join(f"{url}: {v}" for url, v in violations.items())
