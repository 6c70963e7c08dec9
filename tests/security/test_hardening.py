"""Production hardening: the deploy checks, HSTS, secure cookies, CSP, clickjacking, CSRF."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import Client

from accounts.models import Role
from codemaestro.security import ContentSecurityPolicyMiddleware
from orchestration.models import FeatureRequest

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: production settings refuse to load without their environment,
# and must not leak into this test process.
PRODUCTION_PROBE = """
import json, django
from django.core.management import call_command
django.setup()
call_command("check", deploy=True, fail_level="DEBUG")
from django.conf import settings
from django.test import Client, override_settings
# (the manifest storage needs `collectstatic`; headers and cookies do not depend on it)
plain_files = {**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
with override_settings(STORAGES=plain_files):
    client = Client()
    plain = client.get("/login/")
    secure = client.get("/login/", secure=True)
print(json.dumps({
    "session": [settings.SESSION_COOKIE_NAME, settings.SESSION_COOKIE_SECURE,
                settings.SESSION_COOKIE_HTTPONLY, settings.SESSION_COOKIE_SAMESITE],
    "redirect": [plain.status_code, plain.get("Location", "")],
    "headers": dict(secure.headers),
    "cookies": {name: dict(morsel) | {"secure": bool(morsel["secure"])}
                for name, morsel in secure.cookies.items()},
}))
"""


@pytest.fixture(scope="module")
def production():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "codemaestro.settings_production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/unused",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "ALLOWED_HOSTS": "testserver",
    }
    done = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_production_settings_pass_every_deploy_check(production):
    # the probe ran `check --deploy` failing on any message at all, then got here
    assert production["headers"]


def test_production_redirects_plain_http_to_https(production):
    assert production["redirect"] == [301, "https://testserver/login/"]


def test_production_sends_hsts_with_subdomains_and_preload(production):
    hsts = production["headers"]["Strict-Transport-Security"]
    assert hsts == "max-age=31536000; includeSubDomains; preload"


def test_production_cookies_are_secure_host_only_and_hidden_from_scripts(production):
    assert production["session"] == ["__Host-sessionid", True, True, "Lax"]
    csrf = production["cookies"]["__Host-csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax" and csrf["path"] == "/"
    assert not csrf["domain"]  # the __Host- prefix demands it


def test_production_refuses_framing_sniffing_and_cross_origin_referrers(production):
    headers = production["headers"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


@pytest.mark.django_db
def test_every_response_carries_a_csp_without_inline_code_or_eval(client):
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(
        [*part.split(" ", 1), ""][:2] for part in (p.strip() for p in policy.split(";"))
    )
    assert directives == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self' ws://testserver wss://testserver",
        "object-src": "'none'",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
    }


def test_a_forged_host_header_still_gets_a_policy(client):
    response = client.get("/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "evil.example" not in response["Content-Security-Policy"]


def test_pages_configure_htmx_to_need_no_inline_style_and_no_eval(client, member, workspace):
    client.force_login(member(Role.READER))
    html = client.get(f"/w/{workspace.code}/").content.decode()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html)
    assert config is not None
    settings = json.loads(config.group(1))
    assert settings["includeIndicatorStyles"] is False
    assert settings["allowEval"] is False
    assert settings["allowScriptTags"] is False
    # a 403 or 422 fragment is shown, so views need not answer 200 to be seen
    swapped = [rule["code"] for rule in settings["responseHandling"] if rule["swap"]]
    assert swapped == ["[23]..", "(400|403|409|422|429)"]


@pytest.mark.django_db
def test_an_htmx_post_needs_the_csrf_token_the_page_hands_to_htmx(member, workspace, project):
    # given: a signed-in author on a page, with the CSRF check on as in production
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member(Role.AUTHOR))
    page = browser.get(f"/w/{workspace.code}/").content.decode()
    token = json.loads(re.search(r"<body hx-headers='([^']+)'", page).group(1))["X-CSRFToken"]
    url = f"/w/{workspace.code}/features/new/"
    form = {"project": str(project.code), "title": "Exports"}
    # when: htmx posts without the header, then with the header from <body>
    refused = browser.post(url, form, headers={"HX-Request": "true"})
    accepted = browser.post(url, form, headers={"HX-Request": "true", "X-CSRFToken": token})
    # then
    assert refused.status_code == 403
    assert accepted.status_code == 200
    titles = FeatureRequest.objects.filter(project=project).values_list("title", flat=True)
    assert list(titles) == ["Exports"]


def test_a_view_that_sets_its_own_policy_keeps_it(rf):
    stricter = "default-src 'none'"
    middleware = ContentSecurityPolicyMiddleware(
        lambda request: HttpResponse(headers={"Content-Security-Policy": stricter})
    )
    assert middleware(rf.get("/"))["Content-Security-Policy"] == stricter
