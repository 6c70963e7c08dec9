"""The isolation matrix: every endpoint, every role, own and foreign workspace.

Endpoints come from the URL conf and the OpenAPI schema (tests/security/endpoints.py), so a
new one is in the matrix the moment it exists. For each, as each principal:

- own workspace: a role the policy allows gets through the permission gate (no 401, 403,
  404, 405, nor a 5xx); a member without the right gets 403; anonymous callers get 401/403
  (API) or the login page (pages);
- foreign workspace: the same role of workspace B asking for workspace A's object gets 404,
  never 403 or 200; a signed-in user of no workspace too;
- whatever the answer, nobody outside A reads any of A's ids in it, and nothing is written
  in A on their behalf.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import transaction

from accounts.permissions import Action
from orchestration.models import Event
from tests.security.conftest import client_as
from tests.security.endpoints import (
    POLICY,
    Endpoint,
    Rule,
    all_endpoints,
    object_for,
    url_for,
    url_templates,
)
from tests.security.world import PEOPLE, ROLES, Side, World

pytestmark = pytest.mark.django_db

GATE_REFUSALS = {401, 403, 404, 405}
# (case id, role) → why the endpoint does not follow the policy yet. Each is tolerated, and
# reported as fixed (a failure) the moment it does, so this list can only shrink.
KNOWN_GAPS: dict[tuple[str, str], str] = {}
# Pages that answer a method they do not declare (harmless reads, but not 405).
KNOWN_METHOD_GAPS: dict[tuple[str, str], str] = {}
# An endpoint POLICY does not know yet is held to the least any tenant data needs: signed
# in (401/403/login otherwise), another workspace's object is 404, nothing of A leaks.
UNDECLARED = Rule(action=Action.VIEW, label="undeclared")


def _cases() -> list:
    cases = []
    for endpoint in all_endpoints():
        rules = POLICY.get(endpoint.key) or [UNDECLARED]
        for rule in rules:
            verb = "|".join(rule.verbs.values())
            name = endpoint.key + (f" [{verb}]" if verb else "")
            cases.append(pytest.param(endpoint, rule, id=name))
    return cases


CASES = _cases()


def ask(world: World, endpoint: Endpoint, rule: Rule, *, asker: Side | None, role: str):
    """Ask `endpoint` about workspace A's objects as `role` of `asker`."""
    own = world.own
    client = client_as(world, asker, role, page=endpoint.is_page)
    url = url_for(endpoint, rule, own)
    body = rule.body(own) if rule.body else None
    send = getattr(client, endpoint.method.lower())
    if endpoint.is_page:
        return send(url, body or {}), url, body
    return send(url, body, format="json"), url, body


def _leaks(world: World, response, url: str, body: dict | None) -> set[str]:
    """A's ids in an answer given to someone outside A (echoes of the request aside)."""
    text = _body(response).decode(errors="replace")
    asked = url + json.dumps(body or {}, default=str)
    return {code for code in world.own.codes() if code in text and code not in asked}


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/login/")


def _passes_gate(endpoint: Endpoint, response) -> bool:
    if response.status_code in GATE_REFUSALS or response.status_code >= 500:
        return False
    return not (endpoint.is_page and _is_login_redirect(response))


def _body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def _describe(response) -> str:
    return f"{response.status_code} {_body(response)[:300]!r}"


@pytest.mark.parametrize(("endpoint", "rule"), CASES)
def test_endpoint_answers_every_role_as_the_policy_says(world, endpoint, rule, request):
    case = request.node.callspec.id
    problems = []
    for role in ROLES:
        with rolled_back():
            found = _problems(world, endpoint, rule, role)
        if (case, role) not in KNOWN_GAPS:
            problems += [f"{role}: {problem}" for problem in found]
        elif not found:
            problems.append(f"{role}: fixed; remove ({case!r}, {role!r}) from KNOWN_GAPS")
    assert not problems, f"{endpoint.key}\n" + "\n".join(problems)


@contextmanager
def rolled_back() -> Iterator[None]:
    """One request's writes undone before the next role asks."""
    block = transaction.atomic()
    block._from_testcase = True  # the services' durable blocks may open directly inside
    with block:
        yield
        transaction.set_rollback(True)


def _problems(world: World, endpoint: Endpoint, rule: Rule, role: str) -> list[str]:
    events = Event.objects.filter(workspace=world.own.workspace)
    if rule.action is None and role not in ("anonymous", PEOPLE[0]):
        return []  # public: the same for everyone; asked as an admin and as nobody
    if role == "anonymous":
        before = events.count()
        found = _anonymous(world, endpoint, rule)
    elif role == "outsider":
        before = events.count()
        found = _foreign(world, endpoint, rule, asker=None, role=role)
    else:
        found = [] if rule is UNDECLARED else _own(world, endpoint, rule, role)
        if not rule.tenant:
            return found
        # then B's member of the same role asks for the same objects of A
        before = events.count()
        found += _foreign(world, endpoint, rule, asker=world.foreign, role=role)
    if rule is not UNDECLARED and events.count() != before:
        found.append("a request from outside workspace A wrote an event in A")
    return found


def _own(world: World, endpoint: Endpoint, rule: Rule, role: str) -> list[str]:
    response, _, _ = ask(world, endpoint, rule, asker=world.own, role=role)
    if rule.action is None:
        return [] if response.status_code < 500 else [_describe(response)]
    if role in rule.roles_allowed(page=endpoint.is_page):
        return [] if _passes_gate(endpoint, response) else [f"should pass: {_describe(response)}"]
    if endpoint.is_page and role == "agent":
        return [] if _is_login_redirect(response) else [f"not signed in: {_describe(response)}"]
    return [] if response.status_code == 403 else [f"should be 403: {_describe(response)}"]


def _foreign(world: World, endpoint: Endpoint, rule: Rule, *, asker, role: str) -> list[str]:
    response, url, body = ask(world, endpoint, rule, asker=asker, role=role)
    found = []
    if response.status_code >= 500:
        found.append(f"server error: {_describe(response)}")
    elif rule.action is None:
        pass  # public: anyone may call it; it still must not show A's ids
    elif endpoint.is_page and role == "agent":
        if not _is_login_redirect(response):
            found.append(f"not signed in: {_describe(response)}")
    elif endpoint.names_object and response.status_code != 404:
        found.append(f"another workspace's object must be 404: {_describe(response)}")
    if leaked := _leaks(world, response, url, body):
        found.append(f"showed workspace A's ids {sorted(leaked)} to another tenant")
    return found


def _anonymous(world: World, endpoint: Endpoint, rule: Rule) -> list[str]:
    response, url, body = ask(world, endpoint, rule, asker=None, role="anonymous")
    if response.status_code >= 500:
        return [f"server error: {_describe(response)}"]
    if rule.action is None:
        return []
    found = []
    if endpoint.is_page and not _is_login_redirect(response):
        found.append(f"should go to the login page: {_describe(response)}")
    if not endpoint.is_page and response.status_code not in (401, 403):
        found.append(f"should be 401 or 403: {_describe(response)}")
    if _leaks(world, response, url, body):
        found.append("showed workspace A's ids to an anonymous caller")
    return found


def test_every_endpoint_has_a_policy():
    undeclared = [e.key for e in all_endpoints() if e.key not in POLICY]
    assert not undeclared, (
        "endpoints without an access policy; declare them in POLICY "
        f"(tests/security/endpoints.py): {undeclared}"
    )


def test_every_policy_names_an_existing_endpoint():
    keys = {e.key for e in all_endpoints()}
    assert not [key for key in POLICY if key not in keys]


def test_every_url_parameter_names_a_known_object():
    unknown = []
    for endpoint in all_endpoints():
        for param in endpoint.params:
            if param in ("name", "decision"):
                continue
            try:
                object_for(endpoint, param)
            except LookupError as error:
                unknown.append(str(error))
    assert not unknown


def test_every_api_route_is_in_the_schema():
    """An API route the schema leaves out would escape the fuzzing and the clients."""
    from tests.security.endpoints import API_PREFIXES, schema_operations

    documented = {e.path for e in schema_operations()}
    hidden = [
        path
        for path in url_templates()
        if path.startswith(API_PREFIXES) and path not in documented and path != "/api/v1/"
    ]
    assert not hidden


PAGES = sorted({e.path for e in all_endpoints() if e.is_page and e.key in POLICY})


@pytest.mark.parametrize("path", PAGES)
def test_pages_refuse_the_methods_they_do_not_declare(world, path):
    declared = {key.split(" ", 1)[0] for key in POLICY if key.split(" ", 1)[1] == path}
    for method in sorted({"GET", "POST"} - declared):
        endpoint = Endpoint(method, path, in_schema=False)
        rule = POLICY[f"{next(iter(declared))} {path}"][0]
        with rolled_back():
            response, _, _ = ask(world, endpoint, rule, asker=world.own, role=PEOPLE[0])
        if (method, path) in KNOWN_METHOD_GAPS:
            assert response.status_code != 405, f"fixed: remove {method} {path} from the gaps"
        else:
            assert response.status_code == 405, f"{method} {path}: {_describe(response)}"
