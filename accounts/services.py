from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ApiToken, Membership, Role, Workspace, hash_token


@transaction.atomic
def workspace_create(*, name: str, owner=None, slug: str = "") -> Workspace:
    workspace = Workspace.objects.create(name=name, slug=slug or slugify(name)[:60])
    if owner is not None:
        Membership.objects.create(workspace=workspace, user=owner, role=Role.ADMIN)
    return workspace


def membership_set(*, workspace: Workspace, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership


def token_create_for_user(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a personal token; the raw key is returned once and never stored."""
    raw = ApiToken.generate_key()
    token = ApiToken.objects.create(
        kind=ApiToken.Kind.USER,
        name=name,
        user=user,
        key_hash=hash_token(raw),
        prefix=raw[3 : 3 + ApiToken.PREFIX_LENGTH],
    )
    return token, raw


def token_create_for_agent(*, workspace: Workspace, role: str, name: str) -> tuple[ApiToken, str]:
    raw = ApiToken.generate_key()
    token = ApiToken.objects.create(
        kind=ApiToken.Kind.AGENT,
        name=name,
        workspace=workspace,
        agent_role=role,
        key_hash=hash_token(raw),
        prefix=raw[3 : 3 + ApiToken.PREFIX_LENGTH],
    )
    return token, raw


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
