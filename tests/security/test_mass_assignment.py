"""Mass assignment: a tenant or owner named in a request body is ignored everywhere.

Every create and update endpoint (API and form posts, found like the matrix finds them) is
called by a member of workspace A allowed to use it, with a well-formed body plus
`workspace`, `owner`, `user`, `author` and `created_by` naming workspace B and B's admin.
Whatever the endpoint answers, every row it wrote belongs to A and to no user of B, A's
objects stay in A, and B is untouched.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import ForeignKey

from accounts.models import Workspace
from orchestration.models import Event
from tests.security.conftest import client_as
from tests.security.endpoints import POLICY, all_endpoints, url_for
from tests.security.world import PEOPLE, World

pytestmark = pytest.mark.django_db

OWNER_FIELDS = ("owner", "user", "author", "created_by", "decided_by", "requested_by")
WRITES = [
    pytest.param(endpoint, id=endpoint.key)
    for endpoint in all_endpoints()
    if endpoint.method in ("POST", "PUT", "PATCH") and POLICY.get(endpoint.key)
    and POLICY[endpoint.key][0].action is not None
]  # fmt: skip


def _tenant_models() -> list:
    return [
        model
        for model in apps.get_models()
        if any(
            isinstance(f, ForeignKey) and f.name == "workspace" and f.related_model is Workspace
            for f in model._meta.get_fields()
        )
    ]


def _owner_fields(model) -> list[str]:
    user_model = get_user_model()
    return [
        f.name
        for f in model._meta.get_fields()
        if isinstance(f, ForeignKey) and f.related_model is user_model and f.name in OWNER_FIELDS
    ]


def _high_water_marks() -> dict:
    return {model: (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
            for model in _tenant_models()}  # fmt: skip


def _injected(world: World) -> dict:
    other = world.foreign
    boss = other.users[PEOPLE[0]]
    return {
        "workspace": str(other.workspace.code),
        "workspace_id": other.workspace.pk,
        **dict.fromkeys(OWNER_FIELDS, boss.pk),
    }


@pytest.mark.parametrize("endpoint", WRITES)
def test_a_tenant_or_owner_in_the_body_is_ignored(world, endpoint):
    # given: a member of A allowed to call it, and a body that names B and B's admin
    rule = POLICY[endpoint.key][0]
    role = next(r for r in (*PEOPLE, "agent") if r in rule.roles_allowed(page=endpoint.is_page))
    own, foreign = world.own, world.foreign
    # (where `workspace` is a real input, as in a claim, the endpoint's own value stays)
    body = {**_injected(world), **(rule.body(own) if rule.body else {})}
    before = _high_water_marks()
    events_in_b = Event.objects.filter(workspace=foreign.workspace).count()
    client = client_as(world, own, role, page=endpoint.is_page)
    url = url_for(endpoint, rule, own)
    # when
    send = getattr(client, endpoint.method.lower())
    response = send(url, body) if endpoint.is_page else send(url, body, format="json")
    # then: whatever was written belongs to A and to nobody of B
    assert response.status_code < 500, response.content[:300]
    b_users = {u.pk for u in foreign.users.values()}
    for model, high in before.items():
        for row in model.objects.filter(pk__gt=high):
            # (a global row, such as a sign-in audit entry, names no workspace)
            assert row.workspace_id in (own.workspace.pk, None), f"{endpoint.key} wrote {row!r}"
            for name in _owner_fields(model):
                assert getattr(row, f"{name}_id") not in b_users, (
                    f"{endpoint.key} made B's admin the {name} of {row!r}"
                )
    for name, obj in own.objects.items():
        if hasattr(obj, "workspace_id"):
            fresh = type(obj).objects.filter(pk=obj.pk).values_list("workspace_id", flat=True)
            assert list(fresh) in ([], [own.workspace.pk]), f"{name} moved out of A"
    assert Event.objects.filter(workspace=foreign.workspace).count() == events_in_b
    assert not {c for c in foreign.codes() if c in response.content.decode(errors="replace")}
