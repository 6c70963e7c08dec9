"""API fuzzing with schemathesis over our own OpenAPI schema, as workspace A's admin.

For every operation, generated requests (bodies, query strings, verbs) go through the real
WSGI stack with path parameters naming workspace A's objects; each answer must not be a
server error and must conform to the schema. The same request naming workspace B's object
must never succeed. The CI run is small (FUZZ_EXAMPLES per operation, default 6);
`bin/bench fuzz` runs the same test with many more.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.security.endpoints import VERB_PARAMS, Endpoint, object_for, openapi_schema
from tests.security.world import PEOPLE, Side

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
# The coverage phase (boundary values, unsupported methods, every missing field) is
# thorough and slow: the benchmark run turns it on.
COVERAGE = os.environ.get("FUZZ_COVERAGE", "") == "1"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

schema = schemathesis.openapi.from_dict(openapi_schema())
schema.app = get_wsgi_application()
schema.config.phases.coverage.enabled = COVERAGE


@pytest.fixture(autouse=True)
def same_connection():
    """Requests go through Django's WSGI handler in this thread: like Django's test client,
    keep it from closing the connection that holds the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _name(side: Side, case, param: str) -> str:
    endpoint = Endpoint(case.method.upper(), case.path, in_schema=True)
    name = object_for(endpoint, param)
    obj = side.workspace if name == "workspace" else side.objects[name]
    return str(obj.pk if param in ("id", "pk") else obj.code)


def _aim(case, side: Side) -> bool:
    """Point the case's object parameters at `side`'s objects; False if it names none."""
    aimed = False
    for param in case.path_parameters or {}:
        if param not in VERB_PARAMS:
            case.path_parameters[param] = _name(side, case, param)
            aimed = True
    return aimed


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_holds_its_schema_and_its_tenants(case, world):
    headers = {"Authorization": f"Bearer {world.own.keys[PEOPLE[0]]}"}
    # own workspace: no server error, an answer the schema describes
    names_object = _aim(case, world.own)
    case.call_and_validate(headers=headers, checks=CHECKS)
    if not names_object or case.method.upper() != case.operation.method.upper():
        return  # (OPTIONS and other methods the operation lacks read no object)
    # the same request about workspace B's object never succeeds
    _aim(case, world.foreign)
    response = case.call(headers=headers)
    assert not 200 <= response.status_code < 300, (
        f"{case.method} {case.formatted_path} succeeded on workspace B's object: "
        f"{response.status_code} {response.text[:300]}"
    )
