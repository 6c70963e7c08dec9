"""Every endpoint of the product, found in the URL conf and the OpenAPI schema, with the
access policy each one must follow.

Endpoints are discovered, not listed: a new URL pattern or API operation shows up here by
itself, and the matrix fails until POLICY says which action it needs (and how to fill its
URL). What each role may do comes from `accounts.permissions` (ROLE_ACTIONS, AGENT_ACTIONS),
so the table only names the action, never the roles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from accounts.models import Role
from accounts.permissions import AGENT_ACTIONS, ROLE_ACTIONS, Action
from tests.security.world import PEOPLE, Side

API_PREFIXES = ("/api/v1/", "/api/agent/")
# Django's admin is staff-only and not tenant-scoped; static files are not views.
IGNORED_PREFIXES = ("/admin/", "/static/")
METHODS = ("get", "post", "put", "patch", "delete")

# Which world object a URL parameter names: by the parameter's own name, else (for `code`,
# `id`, `pk`) by the path segment in front of it.
PARAM_OBJECTS = {
    "feature": "feature",
    "subtask": "subtask",
    "run": "run",
    "question": "question",
    "secret": "secret",
    "profile": "profile",
    "invite": "invite",
    "member": "membership",
    "token": "token",
}
SEGMENT_OBJECTS = {
    "w": "workspace",
    "workspaces": "workspace",
    "projects": "project",
    "features": "feature",
    "subtasks": "subtask",
    "dependencies": "dependency",
    "events": "event",
    "runs": "run",
    "agent-profiles": "profile",
    "test-runs": "testrun",
    "prompt-proposals": "proposal",
    "changesets": "changeset",
    "c": "changeset",
    "review-comments": "comment",
    "comments": "comment",
    "approvals": "approval",
    "members": "membership",
    "sso": "workspace",
}
# Parameters that carry a primary key or a slug rather than the object's UUID code.
PK_PARAMS = frozenset({"id", "pk", "member"})
# Parameters that pick a verb rather than an object; each rule names its own value.
VERB_PARAMS = frozenset({"name", "decision"})


@dataclass(frozen=True)
class Rule:
    """What one endpoint needs.

    action: the permission it checks (None: public, anyone may call it).
    allowed: the roles allowed, when that is not exactly the roles holding `action` (the
        service decides: e.g. "authors or reviewers", "never agents").
    verbs: values for {name}/{decision}.
    body / query: what a well-formed request sends, made from the side whose objects it names.
    """

    action: Action | None
    allowed: frozenset[str] | None = None
    verbs: dict[str, str] = field(default_factory=dict)
    body: Callable[[Side], dict] | None = None
    query: str = ""
    label: str = ""
    browse: bool = True  # False: a GET the CSP browser test must not open (leaves the site)
    fill: Callable[[Side], dict] | None = None  # path values that are not an object's id
    tenant: bool = True  # False: names no workspace and lists none (no foreign check)

    def roles_allowed(self, *, page: bool) -> frozenset[str]:
        if self.allowed is not None:
            roles = self.allowed
        elif self.action is None:
            roles = frozenset({*PEOPLE, "agent", "outsider", "anonymous"})
        else:
            roles = frozenset(r for r in PEOPLE if self.action in ROLE_ACTIONS[r])
            if self.action in AGENT_ACTIONS:
                roles |= {"agent"}
        # Pages use the session: an agent's token does not sign anyone in there.
        return roles - {"agent"} if page and self.action is not None else roles


VIEW, EDIT, REVIEW, ADMIN, WORK = Action.VIEW, Action.EDIT, Action.REVIEW, Action.ADMIN, Action.WORK
# Authors, reviewers and admins; never agents.
PEOPLE_WHO_WORK = frozenset(r for r in PEOPLE if {Action.EDIT, Action.REVIEW} & ROLE_ACTIONS[r])
REVIEWERS_NOT_AGENTS = frozenset(r for r in PEOPLE if Action.REVIEW in ROLE_ACTIONS[r])
EDITORS = frozenset(r for r in PEOPLE if Action.EDIT in ROLE_ACTIONS[r])
ANY_SIGNED_IN = frozenset({*PEOPLE, "agent", "outsider"})
ANY_PERSON = frozenset({*PEOPLE, "outsider"})
LISTS = (
    "workspaces", "projects", "features", "subtasks", "dependencies", "events", "runs",
    "agent-profiles", "test-runs", "prompt-proposals", "changesets", "approvals",
)  # fmt: skip
DETAILS = (
    ("workspaces", "code"), ("projects", "code"), ("features", "code"), ("subtasks", "code"),
    ("events", "id"), ("runs", "code"), ("agent-profiles", "code"), ("test-runs", "code"),
    ("prompt-proposals", "code"), ("changesets", "code"), ("review-comments", "code"),
    ("approvals", "code"),
)  # fmt: skip
PATCH = "--- a/notes.md\n+++ b/notes.md\n@@ -1 +1 @@\n-# Notes\n+# More notes\n"
LEASE = {"lease_id": "00000000-0000-4000-8000-000000000000"}

# "METHOD /path/{param}/" → the rules it is asked with (one per verb variant).
POLICY: dict[str, list[Rule]] = {
    # --- public ---------------------------------------------------------------------------
    "GET /login/": [Rule(None)],
    "POST /login/": [Rule(None, body=lambda s: {"username": "x", "password": "y"})],
    "POST /logout/": [Rule(None)],
    "GET /healthz": [Rule(None)],
    # --- authenticated, no tenant ---------------------------------------------------------
    # the API's description, public like any published API reference: it holds no data
    "GET /api/schema/": [Rule(None, tenant=False)],
    "GET /api/docs/": [Rule(None, tenant=False)],
    "GET /api/v1/": [Rule(VIEW, allowed=ANY_SIGNED_IN, tenant=False)],
    "GET /": [Rule(VIEW, allowed=ANY_PERSON)],
    # --- dashboard pages ------------------------------------------------------------------
    "GET /w/{code}/": [Rule(VIEW)],
    "GET /w/{code}/live/": [Rule(VIEW, query="after=0")],
    "POST /w/{code}/features/new/": [
        Rule(EDIT, body=lambda s: {"project": s.objects["project"].code, "title": "Exports"})
    ],
    "GET /w/{code}/features/{feature}/": [Rule(VIEW)],
    "GET /w/{code}/states/": [Rule(VIEW)],
    "GET /w/{code}/board/": [Rule(VIEW)],
    "GET /w/{code}/subtasks/{subtask}/": [Rule(VIEW)],
    "POST /w/{code}/subtasks/{subtask}/transitions/{name}/": [
        Rule(EDIT, verbs={"name": "start"}),
        Rule(REVIEW, verbs={"name": "complete"}),
    ],
    "GET /w/{code}/runs/{run}/": [Rule(VIEW)],
    "GET /w/{code}/tests/": [Rule(VIEW)],
    "GET /w/{code}/metrics/": [Rule(VIEW)],
    "GET /w/{code}/search/": [Rule(VIEW, query="q=limits")],
    # --- review pages ---------------------------------------------------------------------
    "GET /review/w/{code}/git/": [Rule(VIEW)],
    "GET /review/c/{code}/": [Rule(VIEW)],
    "GET /review/c/{code}/file/": [Rule(VIEW, query="i=0")],
    "GET /review/c/{code}/context/": [Rule(VIEW, query="i=0&o=1&n=1&c=2")],
    "GET /review/c/{code}/comment-form/": [Rule(VIEW, query="path=limits.py&line=3")],
    "POST /review/c/{code}/comments/": [
        Rule(
            VIEW,
            allowed=PEOPLE_WHO_WORK,
            body=lambda s: {"body": "and here?", "path": "limits.py", "first_line": "3"},
        )
    ],
    "GET /review/c/{code}/poll/": [Rule(VIEW, query="v=stale")],
    "POST /review/c/{code}/merge/": [Rule(REVIEW)],
    "POST /review/c/{code}/refresh/": [Rule(VIEW, allowed=PEOPLE_WHO_WORK)],
    "POST /review/comments/{code}/reply/": [
        Rule(VIEW, allowed=PEOPLE_WHO_WORK, body=lambda s: {"body": "done"})
    ],
    "POST /review/comments/{code}/{name}/": [
        # the thread's author is the reviewer: reviewers and admins settle it
        Rule(VIEW, allowed=REVIEWERS_NOT_AGENTS, verbs={"name": "resolve"})
    ],
    "POST /review/approvals/{code}/{decision}/": [
        Rule(REVIEW, allowed=REVIEWERS_NOT_AGENTS, verbs={"decision": "approve"})
    ],
    # --- REST API: lists and details are VIEW ---------------------------------------------
    **{f"GET /api/v1/{name}/": [Rule(VIEW)] for name in LISTS},
    **{f"GET /api/v1/{name}/{{{param}}}/": [Rule(VIEW)] for name, param in DETAILS},
    "POST /api/v1/workspaces/{code}/projects/": [
        Rule(EDIT, body=lambda s: {"name": "Second", "slug": "second"})
    ],
    "PATCH /api/v1/projects/{code}/": [Rule(EDIT, body=lambda s: {"name": "Renamed"})],
    "POST /api/v1/projects/{code}/features/": [Rule(EDIT, body=lambda s: {"title": "Exports"})],
    "POST /api/v1/projects/{code}/subtasks/": [
        Rule(EDIT, body=lambda s: {"key": "NEW-1", "title": "Export CSV"})
    ],
    "POST /api/v1/features/{code}/transitions/{name}/": [Rule(EDIT, verbs={"name": "cancel"})],
    "PATCH /api/v1/subtasks/{code}/": [Rule(EDIT, body=lambda s: {"title": "Renamed"})],
    "POST /api/v1/subtasks/{code}/reassign/": [Rule(EDIT, body=lambda s: {"profile": None})],
    "POST /api/v1/subtasks/{code}/transitions/{name}/": [
        Rule(EDIT, verbs={"name": "start"}),
        Rule(REVIEW, verbs={"name": "complete"}),
    ],
    "POST /api/v1/dependencies/": [
        Rule(
            EDIT,
            body=lambda s: {
                "subtask": str(s.objects["subtask"].code),
                "depends_on": str(s.objects["third_subtask"].code),
            },
        )
    ],
    "DELETE /api/v1/dependencies/{id}/": [Rule(EDIT)],
    "POST /api/v1/runs/": [
        Rule(EDIT, body=lambda s: {"subtask": str(s.objects["subtask"].code), "step": "tests"})
    ],
    "POST /api/v1/runs/claim/": [
        Rule(WORK, body=lambda s: {"workspace": str(s.workspace.code), "role": "developer"})
    ],
    "POST /api/v1/runs/{code}/cancel/": [Rule(EDIT)],
    "POST /api/v1/runs/{code}/complete/": [Rule(WORK, body=lambda s: LEASE)],
    "POST /api/v1/runs/{code}/fail/": [Rule(WORK, body=lambda s: {**LEASE, "error": "x"})],
    "POST /api/v1/runs/{code}/heartbeat/": [Rule(WORK, body=lambda s: LEASE)],
    "POST /api/v1/prompt-proposals/{code}/apply/": [Rule(ADMIN)],
    "POST /api/v1/prompt-proposals/{code}/reject/": [Rule(ADMIN)],
    "GET /api/v1/changesets/{code}/comments/": [Rule(VIEW)],
    "POST /api/v1/changesets/{code}/comments/": [
        Rule(
            VIEW,
            allowed=PEOPLE_WHO_WORK,
            body=lambda s: {"body": "and here?", "path": "limits.py", "first_line": 3},
        )
    ],
    "POST /api/v1/changesets/{code}/merge/": [Rule(REVIEW)],
    "POST /api/v1/changesets/{code}/refresh/": [Rule(VIEW, allowed=PEOPLE_WHO_WORK)],
    "POST /api/v1/review-comments/{code}/transitions/{name}/": [
        Rule(VIEW, allowed=REVIEWERS_NOT_AGENTS, verbs={"name": "resolve"})
    ],
    "POST /api/v1/approvals/{code}/approve/": [
        Rule(REVIEW, allowed=REVIEWERS_NOT_AGENTS, body=lambda s: {"note": "ok"})
    ],
    "POST /api/v1/approvals/{code}/request-changes/": [
        Rule(REVIEW, allowed=REVIEWERS_NOT_AGENTS, body=lambda s: {"note": "no"})
    ],
    # --- access: members, invites, tokens (admins) ----------------------------------------
    "GET /w/{code}/access/": [Rule(ADMIN)],
    "POST /w/{code}/access/invites/": [
        Rule(ADMIN, body=lambda s: {"email": "someone@example.com", "role": "reader"})
    ],
    "POST /w/{code}/access/invites/{invite}/revoke/": [Rule(ADMIN)],
    "POST /w/{code}/access/members/{member}/role/": [
        Rule(ADMIN, body=lambda s: {"role": "author"})
    ],
    "POST /w/{code}/access/members/{member}/remove/": [Rule(ADMIN)],
    "POST /w/{code}/access/project-roles/": [
        Rule(
            ADMIN,
            body=lambda s: {
                "member": s.users[Role.READER].pk,
                "project": s.objects["project"].code,
                "role": "author",
            },
        )
    ],
    "POST /w/{code}/access/tokens/": [
        Rule(ADMIN, body=lambda s: {"name": "bot", "role": "developer"})
    ],
    "POST /w/{code}/access/tokens/{token}/revoke/": [Rule(ADMIN)],
    "GET /workspaces/switch/": [Rule(VIEW, allowed=ANY_PERSON)],
    # whoever holds the link may open it; the matrix's people are members already
    "GET /invites/{token}/": [Rule(None, fill=lambda s: {"token": s.objects["invite_key"]})],
    "POST /invites/{token}/": [Rule(None, fill=lambda s: {"token": "not-a-token"})],
    "GET /api/v1/workspaces/{code}/members/": [Rule(ADMIN)],
    "PATCH /api/v1/workspaces/{code}/members/{id}/": [
        Rule(ADMIN, body=lambda s: {"role": "author"})
    ],
    "DELETE /api/v1/workspaces/{code}/members/{id}/": [Rule(ADMIN)],
    "POST /api/v1/workspaces/{code}/members/{id}/project-roles/": [
        Rule(ADMIN, body=lambda s: {"project": str(s.objects["project"].code), "role": "author"})
    ],
    "GET /api/v1/workspaces/{code}/invites/": [Rule(ADMIN)],
    "POST /api/v1/workspaces/{code}/invites/": [
        Rule(ADMIN, body=lambda s: {"email": "someone@example.com", "role": "reader"})
    ],
    "DELETE /api/v1/workspaces/{code}/invites/{invite}/": [Rule(ADMIN)],
    "GET /api/v1/workspaces/{code}/tokens/": [Rule(ADMIN)],
    "POST /api/v1/workspaces/{code}/tokens/": [
        Rule(ADMIN, body=lambda s: {"name": "bot", "role": "developer"})
    ],
    "DELETE /api/v1/workspaces/{code}/tokens/{token}/": [Rule(ADMIN)],
    "GET /api/v1/workspaces/{code}/rate-limits/": [Rule(VIEW)],
    "PUT /api/v1/workspaces/{code}/rate-limits/": [
        Rule(ADMIN, body=lambda s: {"requests_per_minute": 600, "token_requests_per_minute": 300})
    ],
    # --- secrets (admins) -----------------------------------------------------------------
    "GET /w/{code}/secrets/": [Rule(ADMIN)],
    "POST /w/{code}/secrets/set/": [
        Rule(ADMIN, body=lambda s: {"name": "NEW_KEY", "environment": "dev", "value": "v-1234"})
    ],
    "POST /w/{code}/secrets/{secret}/delete/": [Rule(ADMIN)],
    "POST /w/{code}/secrets/grants/{profile}/": [
        Rule(ADMIN, body=lambda s: {"secret": [str(s.objects["secret"].code)]})
    ],
    "GET /api/v1/workspaces/{code}/secrets/": [Rule(ADMIN)],
    "POST /api/v1/workspaces/{code}/secrets/": [
        Rule(ADMIN, body=lambda s: {"name": "NEW_KEY", "environment": "dev", "value": "v-1234"})
    ],
    "GET /api/v1/workspaces/{code}/secrets/{secret}/": [Rule(ADMIN)],
    "PUT /api/v1/workspaces/{code}/secrets/{secret}/": [
        Rule(ADMIN, body=lambda s: {"value": "v-5678"})
    ],
    "PATCH /api/v1/workspaces/{code}/secrets/{secret}/": [
        Rule(ADMIN, body=lambda s: {"value": "v-5678"})
    ],
    "DELETE /api/v1/workspaces/{code}/secrets/{secret}/": [Rule(ADMIN)],
    "POST /api/v1/workspaces/{code}/secrets/{secret}/grants/": [
        Rule(ADMIN, body=lambda s: {"profile": str(s.objects["profile"].code)})
    ],
    "DELETE /api/v1/workspaces/{code}/secrets/{secret}/grants/{profile}/": [Rule(ADMIN)],
    # --- audit (admins) -------------------------------------------------------------------
    "GET /w/{code}/audit/": [Rule(ADMIN)],
    "GET /w/{code}/audit/export/": [Rule(ADMIN, browse=False)],
    "GET /api/v1/workspaces/{code}/audit/": [Rule(ADMIN)],
    # --- sign-in: two-factor, single sign-on ----------------------------------------------
    "GET /login/verify/": [Rule(None)],
    "POST /login/verify/": [Rule(None, body=lambda s: {"code": "000000"})],
    "GET /account/two-factor/": [Rule(VIEW, allowed=ANY_PERSON, tenant=False)],
    "GET /account/two-factor/enrol/": [Rule(VIEW, allowed=ANY_PERSON, tenant=False)],
    "POST /account/two-factor/enrol/": [
        Rule(VIEW, allowed=ANY_PERSON, tenant=False, body=lambda s: {"code": "000000"})
    ],
    "POST /account/two-factor/disable/": [
        Rule(VIEW, allowed=ANY_PERSON, tenant=False, body=lambda s: {"code": "000000"})
    ],
    "POST /account/two-factor/recovery-codes/": [
        Rule(VIEW, allowed=ANY_PERSON, tenant=False, body=lambda s: {"code": "000000"})
    ],
    "GET /sso/": [Rule(None)],
    "GET /sso/{slug}/": [Rule(None, browse=False)],
    "GET /sso/{slug}/callback/": [Rule(None, browse=False, query="state=x&code=y")],
    "GET /w/{code}/sso/": [Rule(ADMIN)],
    "POST /w/{code}/sso/": [Rule(ADMIN, body=lambda s: {"issuer": ""})],
    # --- the agents' API ------------------------------------------------------------------
    "GET /api/agent/briefing/{subtask}": [Rule(VIEW)],
    "GET /api/agent/subtasks/{subtask}/questions": [Rule(VIEW)],
    "POST /api/agent/subtasks/{subtask}/questions": [
        # people who edit, or an agent whose role works on the subtask
        Rule(
            EDIT,
            allowed=EDITORS | {"agent"},
            body=lambda s: {"text": "Which limit?"},
        )
    ],
    "GET /api/agent/subtasks/{subtask}/review-comments": [Rule(VIEW)],
    "POST /api/agent/questions/{question}/answer": [
        # people who edit or review; agents only in answering roles (a developer is not)
        Rule(VIEW, allowed=PEOPLE_WHO_WORK, body=lambda s: {"answer": "ten"})
    ],
    "GET /api/agent/runs": [
        Rule(WORK, query="role=developer&workspace={workspace}"),
    ],
    "POST /api/agent/runs/claim": [
        Rule(WORK, body=lambda s: {"workspace": str(s.workspace.code), "role": "developer"})
    ],
    "POST /api/agent/runs/{run}/heartbeat": [Rule(WORK, body=lambda s: LEASE)],
    "GET /api/agent/runs/{run}/briefing": [Rule(VIEW)],
    "GET /api/agent/runs/{run}/context": [Rule(VIEW)],
    "POST /api/agent/runs/{run}/patch": [Rule(WORK, body=lambda s: {**LEASE, "patch": PATCH})],
    "POST /api/agent/runs/{run}/result": [Rule(WORK, body=lambda s: {**LEASE, "success": True})],
    "POST /api/agent/runs/{run}/release": [Rule(WORK, body=lambda s: LEASE)],
}


@dataclass(frozen=True)
class Endpoint:
    method: str  # upper case
    path: str  # with {param} placeholders
    in_schema: bool

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def is_page(self) -> bool:
        return not self.path.startswith("/api/")

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def names_object(self) -> bool:
        return any(p not in VERB_PARAMS for p in self.params)


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _template(route: str) -> str:
    """`w/<uuid:code>/` or `^runs/(?P<code>[0-9a-f-]{36})/$` → `w/{code}/`, `runs/{code}/`."""
    route = _GROUP.sub(lambda m: "{" + m.group(1) + "}", route)
    route = _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", route)
    return route.replace("^", "").replace("$", "").replace("\\.", ".")


def url_templates() -> list[str]:
    """Every route of the URL conf as a path template, format-suffix duplicates left out."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield route

    found = []
    for route in walk(get_resolver().url_patterns, ""):
        path = "/" + _template(route)
        if path.startswith(API_PREFIXES):
            path = path.replace("{pk}", "{id}")  # as drf-spectacular names it
        if "{format}" in path or path.startswith(IGNORED_PREFIXES):
            continue
        found.append(path)
    return sorted(set(found))


@cache
def openapi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def schema_operations() -> list[Endpoint]:
    return [
        Endpoint(method.upper(), path, in_schema=True)
        for path, operations in openapi_schema()["paths"].items()
        for method in operations
        if method in METHODS
    ]


def all_endpoints() -> list[Endpoint]:
    """API operations from the schema; pages (and API routes the schema leaves out) from the
    URL conf, with the methods POLICY declares for them."""
    endpoints = {e.key: e for e in schema_operations()}
    schema_paths = {e.path for e in endpoints.values()}
    for path in url_templates():
        if path in schema_paths:
            continue
        declared = [k for k in POLICY if k.split(" ", 1)[1] == path]
        if not declared:  # a new route: make it fail in the matrix until declared
            endpoints[f"GET {path}"] = Endpoint("GET", path, in_schema=False)
        for key in declared:
            endpoints[key] = Endpoint(key.split(" ", 1)[0], path, in_schema=False)
    return sorted(endpoints.values(), key=lambda e: e.key)


def object_for(endpoint: Endpoint, param: str) -> str:
    """The world key of the object `param` names in `endpoint`'s path."""
    if param in PARAM_OBJECTS and param != "id":
        return PARAM_OBJECTS[param]
    segments = endpoint.path.strip("/").split("/")
    index = segments.index("{" + param + "}")
    segment = segments[index - 1] if index else ""
    if segment not in SEGMENT_OBJECTS:
        raise LookupError(
            f"{endpoint.key}: which object does {{{param}}} after '{segment}/' name? "
            "Add it to SEGMENT_OBJECTS or PARAM_OBJECTS in tests/security/endpoints.py"
        )
    return SEGMENT_OBJECTS[segment]


def url_for(endpoint: Endpoint, rule: Rule, side: Side) -> str:
    """The endpoint's URL naming `side`'s objects."""
    path = endpoint.path
    filled = rule.fill(side) if rule.fill else {}
    for param in endpoint.params:
        if param in filled:
            value = filled[param]
        elif param in VERB_PARAMS:
            value = rule.verbs[param]
        else:
            name = object_for(endpoint, param)
            obj = side.workspace if name == "workspace" else side.objects[name]
            value = obj.pk if param in PK_PARAMS else obj.slug if param == "slug" else obj.code
        path = path.replace("{" + param + "}", str(value))
    query = rule.query.replace("{workspace}", str(side.workspace.code))
    return f"{path}?{query}" if query else path
