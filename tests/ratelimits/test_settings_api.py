from __future__ import annotations

import pytest
from django.contrib.admin.sites import site

from accounts.models import Role
from audit.models import AuditEntry
from ratelimits.models import WorkspaceRateLimit
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory


def url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.code}/rate-limits/"


def test_an_admin_sets_limits_that_apply_at_once_and_are_audited(api_as, workspace, settings):
    # given
    settings.REDIS_URL = ""
    client = api_as(Role.ADMIN)
    # when
    response = client.put(
        url(workspace), {"requests_per_minute": 2, "token_requests_per_minute": None}, format="json"
    )
    # then
    assert response.status_code == 200
    assert response.json() == {
        "requests_per_minute": 2,
        "token_requests_per_minute": None,
        "effective_requests_per_minute": 2,
        "effective_token_requests_per_minute": settings.RATELIMIT["TOKEN_PER_MINUTE"],
        "default_requests_per_minute": settings.RATELIMIT["WORKSPACE_PER_MINUTE"],
        "default_token_requests_per_minute": settings.RATELIMIT["TOKEN_PER_MINUTE"],
    }
    entry = AuditEntry.objects.get(action="ratelimit.changed")
    assert entry.actor == f"user:{client.user.username}"
    assert entry.details == {
        "from": {"requests_per_minute": None, "token_requests_per_minute": None},
        "to": {"requests_per_minute": 2, "token_requests_per_minute": None},
    }
    # the PUT was the first request of the window: one more, then refused
    assert client.get(url(workspace)).status_code == 200
    assert client.get(url(workspace)).status_code == 429


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"requests_per_minute": 0, "token_requests_per_minute": None}, "requests_per_minute"),
        (
            {"requests_per_minute": 5, "token_requests_per_minute": "many"},
            "token_requests_per_minute",
        ),
        (
            {"requests_per_minute": 10_000_000, "token_requests_per_minute": 1},
            "requests_per_minute",
        ),
        ({"token_requests_per_minute": 5}, "requests_per_minute"),
    ],
)
def test_refuses_values_out_of_range(api_as, workspace, body, field):
    response = api_as(Role.ADMIN).put(url(workspace), body, format="json")
    assert response.status_code == 400 and list(response.json()) == [field]
    assert not WorkspaceRateLimit.objects.exists() and not AuditEntry.objects.exists()


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.REVIEWER, Role.READER])
def test_members_read_the_limits_but_only_admins_change_them(api_as, workspace, role):
    client = api_as(role)
    assert client.get(url(workspace)).status_code == 200
    body = {"requests_per_minute": 1, "token_requests_per_minute": 1}
    assert client.put(url(workspace), body, format="json").status_code == 403
    assert not WorkspaceRateLimit.objects.exists()


def test_other_workspaces_are_404(api_as, workspace):
    client = api_as(Role.ADMIN, ws=WorkspaceFactory())
    assert client.get(url(workspace)).status_code == 404
    body = {"requests_per_minute": 1, "token_requests_per_minute": 1}
    assert client.put(url(workspace), body, format="json").status_code == 404


def test_workspace_admins_edit_only_their_workspaces_in_the_admin(rf, member, workspace):
    # given: a staff user who is admin of `workspace` and reader of another
    other = WorkspaceFactory()
    user = member(Role.ADMIN)
    MembershipFactory(workspace=other, user=user, role=Role.READER)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    reader_of_other = UserFactory(is_staff=True)
    model_admin = site._registry[WorkspaceRateLimit]
    request = rf.get("/")
    request.user = user
    mine = WorkspaceRateLimit.objects.create(workspace=workspace, requests_per_minute=5)
    theirs = WorkspaceRateLimit.objects.create(workspace=other, requests_per_minute=5)
    # then
    assert list(model_admin.get_queryset(request)) == [mine]
    assert model_admin.has_change_permission(request, mine)
    assert not model_admin.has_change_permission(request, theirs)
    request.user = reader_of_other
    assert not model_admin.has_module_permission(request)
    # when: saved through the admin, the change is audited
    request.user = user
    mine.requests_per_minute = 7
    model_admin.save_model(request, mine, form=None, change=True)
    assert WorkspaceRateLimit.objects.get(pk=workspace.pk).requests_per_minute == 7
    assert AuditEntry.objects.get(action="ratelimit.changed").workspace_id == workspace.pk
