"""HTTP security headers Django's own middleware does not set: the Content-Security-Policy.

Django 5.2 has no CSP support of its own. Every page gets one strict policy: scripts and
styles only from our own static files (no inline code, no eval), nothing framed, forms and
base URLs pinned to this site. A view that needs another policy sets the header itself and
this middleware leaves it alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

# 'self' alone already matches same-host websockets in current browsers; the explicit
# ws(s)://<host> sources are for the ones that predate CSP 3. A bare `ws: wss:` would let
# an injected script talk to any websocket host, which is what this policy is there to stop.
DEFAULT_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'", "{ws_self}"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
}


def build_policy(request: HttpRequest, policy: dict[str, list[str]] | None = None) -> str:
    """The header value for `request`: `{ws_self}` becomes this host's ws:// and wss://."""
    try:
        host = request.get_host()
    except DisallowedHost:  # the 400 for a forged Host header still gets a policy
        host = ""
    parts = []
    for directive, sources in (policy or DEFAULT_POLICY).items():
        expanded: list[str] = []
        for source in sources:
            if source == "{ws_self}":
                expanded += [f"ws://{host}", f"wss://{host}"] if host else []
            else:
                expanded.append(source)
        parts.append(" ".join([directive, *expanded]))
    return "; ".join(parts)


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header (settings.CONTENT_SECURITY_POLICY overrides)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            policy = getattr(settings, "CONTENT_SECURITY_POLICY", None)
            response[HEADER] = build_policy(request, policy)
        return response
