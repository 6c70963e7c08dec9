"""Writes for workspaces, members, roles, invites and tokens.

Every change of who may do what is one transaction with its audit entry. Roles are kept
as django-guardian object permission rows (see `accounts.permissions`); the signals in
`accounts.signals` keep those rows in step with `Membership` and `ProjectRole`, so any
way of saving them (services, admin, fixtures) grants exactly the role.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import (
    AgentRole,
    ApiToken,
    Invite,
    Membership,
    ProjectRole,
    ProjectUserObjectPermission,
    Role,
    Workspace,
    WorkspaceUserObjectPermission,
    hash_token,
)
from accounts.permissions import ROLE_ACTIONS, Action, codename, forget
from orchestration.errors import Conflict, InvalidInput

INVITE_TTL = timedelta(days=7)
INVITE_SALT = "accounts.invite"
TOKEN_NAME_MAX = 120


def _audit(*, workspace: Workspace | None, actor: str, action: str, target: str, **details):
    from audit.services import record_audit

    return record_audit(
        workspace=workspace, actor=actor, action=action, target=target, details=details
    )


# --- permission rows ------------------------------------------------------------------------


def _permissions(model_name: str, app_label: str, actions) -> list[Permission]:
    ctype = ContentType.objects.get_by_natural_key(app_label, model_name)
    names = [codename(a, model_name) for a in actions]
    return list(Permission.objects.filter(content_type=ctype, codename__in=names))


def ensure_project_permissions(apps=None, using: str = "default", **kwargs) -> None:
    """Create the per-action permissions on projects (the Project model does not declare
    them, orchestration knowing nothing of roles); run after every migrate and flush."""
    if apps is None:
        from django.apps import apps
    try:
        content_type_model = apps.get_model("contenttypes", "ContentType")
        permission_model = apps.get_model("auth", "Permission")
        apps.get_model("orchestration", "Project")
    except LookupError:
        return  # a partial migrate: the tables are not there yet
    if any(f.name == "name" for f in content_type_model._meta.fields):
        return  # contenttypes not migrated far enough yet; a later migrate comes back here
    ctype, _ = content_type_model.objects.using(using).get_or_create(
        app_label="orchestration", model="project"
    )
    for action in Action:
        permission_model.objects.using(using).get_or_create(
            content_type=ctype,
            codename=codename(action, "project"),
            defaults={"name": f"Can {action.value} project"},
        )


def grant_workspace_role(*, user_id: int, workspace_id: int, role: str | None) -> None:
    """Make the user's permission rows on the workspace exactly those of `role` (None: none)."""
    rows = WorkspaceUserObjectPermission.objects.filter(
        user_id=user_id, content_object_id=workspace_id
    )
    rows.delete()
    if role:
        WorkspaceUserObjectPermission.objects.bulk_create(
            [
                WorkspaceUserObjectPermission(
                    user_id=user_id, content_object_id=workspace_id, permission=perm
                )
                for perm in _permissions("workspace", "accounts", ROLE_ACTIONS[role])
            ],
            ignore_conflicts=True,
        )


def grant_project_role(*, user_id: int, project_id: int, role: str | None) -> None:
    ProjectUserObjectPermission.objects.filter(
        user_id=user_id, content_object_id=project_id
    ).delete()
    if role:
        ProjectUserObjectPermission.objects.bulk_create(
            [
                ProjectUserObjectPermission(
                    user_id=user_id, content_object_id=project_id, permission=perm
                )
                for perm in _permissions("project", "orchestration", ROLE_ACTIONS[role])
            ],
            ignore_conflicts=True,
        )


# --- workspaces and members -----------------------------------------------------------------


@transaction.atomic
def workspace_create(*, name: str, owner=None, slug: str = "") -> Workspace:
    workspace = Workspace.objects.create(name=name, slug=slug or slugify(name)[:60])
    if owner is not None:
        Membership.objects.create(workspace=workspace, user=owner, role=Role.ADMIN)
    return workspace


def membership_set(*, workspace: Workspace, user, role: str) -> Membership:
    """Add or update a membership without checks or audit: seeds, commands and tests."""
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    forget(user)
    return membership


def _check_role(role: str, field: str = "role") -> str:
    if role not in Role.values:
        raise InvalidInput(f"role is one of {', '.join(Role.values)}", field=field)
    return role


def _lock_admins(workspace: Workspace) -> int:
    """Lock the admin memberships and count them: removing the last admin must serialise."""
    return len(
        Membership.objects.select_for_update()
        .filter(workspace=workspace, role=Role.ADMIN)
        .values_list("pk", flat=True)
    )


@transaction.atomic
def member_role_change(*, membership: Membership, role: str, actor: str) -> Membership:
    _check_role(role)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    old = membership.role
    if old == role:
        return membership
    if old == Role.ADMIN and _lock_admins(membership.workspace) <= 1:
        raise Conflict("a workspace keeps at least one admin: make someone else admin first")
    membership.role = role
    membership.save(update_fields=["role"])
    forget(membership.user)
    _audit(
        workspace=membership.workspace,
        actor=actor,
        action="member.role_changed",
        target=f"user:{membership.user.username}",
        old=old,
        new=role,
    )
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: str) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.ADMIN and _lock_admins(membership.workspace) <= 1:
        raise Conflict("the last admin cannot be removed: make someone else admin first")
    workspace, user, role = membership.workspace, membership.user, membership.role
    membership.delete()  # the signal drops the permission rows and project overrides
    forget(user)
    _audit(
        workspace=workspace,
        actor=actor,
        action="member.removed",
        target=f"user:{user.username}",
        role=role,
    )


# --- per-project overrides -------------------------------------------------------------------


@transaction.atomic
def project_role_set(*, project, user, role: str | None, actor: str) -> ProjectRole | None:
    """Give a member another role on one project; `role=None` goes back to the workspace's."""
    if role is not None:
        _check_role(role)
    membership = Membership.objects.filter(workspace_id=project.workspace_id, user=user).first()
    if membership is None:
        raise InvalidInput("only members of the workspace can hold a role on its projects")
    if role is None:
        ProjectRole.objects.filter(project=project, user=user).delete()
        result = None
    else:
        result, _ = ProjectRole.objects.update_or_create(
            project=project,
            user=user,
            defaults={"role": role, "workspace_id": project.workspace_id},
        )
    forget(user)
    _audit(
        workspace=membership.workspace,
        actor=actor,
        action="project_role.set",
        target=f"user:{user.username}",
        project=str(project.code),
        role=role or f"workspace ({membership.role})",
    )
    return result


# --- invites ---------------------------------------------------------------------------------


def invite_token(invite: Invite) -> str:
    return signing.TimestampSigner(salt=INVITE_SALT).sign(str(invite.code))


@transaction.atomic
def member_invite(
    *, workspace: Workspace, email: str, role: str, invited_by=None, actor: str
) -> tuple[Invite, str]:
    """Invite an email address; returns the invite and its link token (shown to the admin)."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput("enter a valid email address", field="email") from None
    _check_role(role)
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of this workspace", field="email")
    now = timezone.now()
    # A new invite replaces an earlier pending one: only the newest link works.
    Invite.objects.filter(
        workspace=workspace, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    invite = Invite.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITE_TTL,
    )
    _audit(
        workspace=workspace,
        actor=actor,
        action="member.invited",
        target=email,
        role=role,
        invite=str(invite.code),
    )
    return invite, invite_token(invite)


@transaction.atomic
def invite_revoke(*, invite: Invite, actor: str) -> None:
    updated = Invite.objects.filter(
        pk=invite.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if updated:
        _audit(
            workspace=invite.workspace,
            actor=actor,
            action="member.invite_revoked",
            target=invite.email,
            invite=str(invite.code),
        )


def invite_from_token(token: str) -> Invite:
    """The pending invite a link token names; InvalidInput if forged, expired or used."""
    try:
        code = signing.TimestampSigner(salt=INVITE_SALT).unsign(
            token, max_age=INVITE_TTL.total_seconds()
        )
    except signing.SignatureExpired:
        raise InvalidInput("this invite link has expired: ask for a new one") from None
    except signing.BadSignature:
        raise InvalidInput("this invite link is not valid") from None
    invite = Invite.objects.select_related("workspace").filter(code=code).first()
    if invite is None or invite.revoked_at is not None:
        raise InvalidInput("this invite was withdrawn: ask for a new one")
    if invite.accepted_at is not None:
        raise InvalidInput("this invite has already been used")
    if invite.expires_at <= timezone.now():
        raise InvalidInput("this invite link has expired: ask for a new one")
    return invite


@transaction.atomic
def invite_accept(*, token: str, user) -> Membership:
    """Join the workspace of an invite as `user` (signed in, or just created for it)."""
    invite = invite_from_token(token)
    invite = Invite.objects.select_for_update().get(pk=invite.pk)
    if invite.accepted_at is not None or invite.revoked_at is not None:
        raise InvalidInput("this invite has already been used")
    existing = Membership.objects.filter(workspace=invite.workspace, user=user).first()
    if existing is not None:
        membership = existing  # never lowers or raises a role someone already holds
    else:
        membership = Membership.objects.create(
            workspace=invite.workspace, user=user, role=invite.role
        )
    invite.accepted_at = timezone.now()
    invite.accepted_by = user
    invite.save(update_fields=["accepted_at", "accepted_by"])
    forget(user)
    _audit(
        workspace=invite.workspace,
        actor=f"user:{user.username}",
        action="member.joined",
        target=invite.email,
        role=membership.role,
        invite=str(invite.code),
    )
    return membership


@transaction.atomic
def user_create_for_invite(*, token: str, username: str, password: str):
    """Create an account from an invite link and accept it, in one transaction."""
    from django.contrib.auth.password_validation import validate_password

    invite = invite_from_token(token)
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise InvalidInput("choose a user name", field="username")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("this user name is taken", field="username")
    user = User(username=username, email=invite.email)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages), field="password") from None
    user.set_password(password)
    user.save()
    invite_accept(token=token, user=user)
    return user


# --- tokens ----------------------------------------------------------------------------------


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


@transaction.atomic
def token_create_for_agent(
    *,
    workspace: Workspace,
    role: str,
    name: str,
    project=None,
    created_by=None,
    actor: str = "system",
) -> tuple[ApiToken, str]:
    """Create an agent token bound to a workspace, a role and optionally one project.

    The raw key is returned once; only its SHA-256 is stored.
    """
    name = (name or "").strip()
    if not name:
        raise InvalidInput("give the token a name", field="name")
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(f"the name is at most {TOKEN_NAME_MAX} characters", field="name")
    if role not in AgentRole.values:
        raise InvalidInput(f"role is one of {', '.join(AgentRole.values)}", field="role")
    if project is not None and project.workspace_id != workspace.pk:
        raise InvalidInput("the project must belong to this workspace", field="project")
    raw = ApiToken.generate_key()
    token = ApiToken.objects.create(
        kind=ApiToken.Kind.AGENT,
        name=name,
        workspace=workspace,
        agent_role=role,
        project=project,
        created_by=created_by,
        key_hash=hash_token(raw),
        prefix=raw[3 : 3 + ApiToken.PREFIX_LENGTH],
    )
    _audit(
        workspace=workspace,
        actor=actor,
        action="token.created",
        target=f"token:{token.prefix}",
        name=name,
        role=role,
        project=str(project.code) if project is not None else None,
    )
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: str = "system") -> bool:
    """Revoke a token at once; False if it was already revoked."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        _audit(
            workspace=token.workspace,
            actor=actor,
            action="token.revoked",
            target=f"token:{token.prefix}",
            name=token.name,
        )
    return bool(updated)
