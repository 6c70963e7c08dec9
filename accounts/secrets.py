"""Workspace secrets: one value per name and environment, written but never read back.

A project runs in one environment (`"environment"` in its policy: dev, staging or prod;
dev when unset). A run receives the values of the secrets its agent profile is granted,
for its project's environment only, and each handover is audited. Values are encrypted
with the keys in CODEMAESTRO_SECRET_KEYS (accounts.crypto); `secrets_rotate` re-encrypts
them all with the newest key. Every value seen here is remembered by accounts.scrubbing.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Prefetch, QuerySet

from accounts import crypto
from accounts.models import Environment, Secret, Workspace
from accounts.scrubbing import MASK, MIN_SCRUBBED_LENGTH
from audit.services import record_audit

ENVIRONMENTS: tuple[str, ...] = tuple(Environment.values)
DEFAULT_ENVIRONMENT = Environment.DEV.value
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_VALUE_LENGTH = 10_000
ROTATE_BATCH_SIZE = 1_000


class SecretError(Exception):
    """A refused change, with a message fit to show the person who asked."""

    status = 400


class SecretNotFound(SecretError):
    status = 404


class SecretConflict(SecretError):
    status = 409


class SecretsUnavailable(Exception):
    """A run cannot be given its secrets (bad environment setting, unreadable value)."""


# --- validation --------------------------------------------------------------------------


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SecretError(
            "name must be an environment variable name: a capital letter, then capitals, "
            "digits and underscores, at most 64 characters"
        )
    return name


def validate_environment(environment: Any) -> str:
    if environment not in ENVIRONMENTS:
        raise SecretError(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    return environment


def validate_value(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SecretError("value must be a non-empty string")
    if len(value) < MIN_SCRUBBED_LENGTH:
        # Shorter values could not be masked in logs without garbling ordinary text.
        raise SecretError(f"value must be at least {MIN_SCRUBBED_LENGTH} characters")
    if len(value) > MAX_VALUE_LENGTH:
        raise SecretError(f"value must be at most {MAX_VALUE_LENGTH} characters")
    if "\x00" in value:
        raise SecretError("value must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SecretError("value must be valid Unicode text") from None
    return value


def masked(secret: Secret) -> str:
    """What every page and response shows instead of the value (never a hint of it)."""
    return MASK


def _target(secret: Secret) -> str:
    return f"secret:{secret.name}:{secret.environment}"


def _details(secret: Secret, **more: Any) -> dict[str, Any]:
    return {
        "code": str(secret.code),
        "name": secret.name,
        "environment": secret.environment,
        **more,
    }


# --- reads -------------------------------------------------------------------------------


def _profile_model():
    # The grant lives on orchestration's AgentProfile; reach it through the relation so
    # accounts never imports orchestration.
    return Secret._meta.get_field("granted_to").related_model


def secrets_of(workspace: Workspace) -> QuerySet[Secret]:
    """A workspace's secrets with the profiles granted each (two queries in all)."""
    profiles = _profile_model().objects.only("code", "name").order_by("name")
    return (
        Secret.objects.filter(workspace=workspace)
        .order_by("name", "environment")
        .prefetch_related(Prefetch("granted_to", queryset=profiles))
    )


def secret_get(workspace: Workspace, code: Any) -> Secret:
    secret = Secret.objects.filter(workspace=workspace, code=code).first()
    if secret is None:
        raise SecretNotFound("no such secret in this workspace")
    return secret


def profile_get(workspace: Workspace, code: Any):
    profile = _profile_model().objects.filter(workspace=workspace, code=code).first()
    if profile is None:
        raise SecretNotFound("no such agent profile in this workspace")
    return profile


def profiles_of(workspace: Workspace) -> QuerySet:
    return _profile_model().objects.filter(workspace=workspace).order_by("name")


@dataclass
class MatrixRow:
    name: str
    cells: list[tuple[str, Secret | None]]  # (environment, its secret), in ENVIRONMENTS order


def secret_matrix(secrets: list[Secret]) -> list[MatrixRow]:
    """Rows by name, a column per environment (None where that environment has no value)."""
    found: dict[str, dict[str, Secret]] = {}
    for secret in secrets:
        found.setdefault(secret.name, {})[secret.environment] = secret
    return [
        MatrixRow(name, [(env, found[name].get(env)) for env in ENVIRONMENTS])
        for name in sorted(found)
    ]


# --- writes ------------------------------------------------------------------------------


def _insert(*, workspace: Workspace, name: str, environment: str, value: str) -> Secret:
    secret = Secret(workspace=workspace, name=name, environment=environment)
    secret.set_value(value)
    try:
        with transaction.atomic():
            secret.save(force_insert=True)
    except IntegrityError:
        raise SecretConflict(
            f"{name} already has a {environment} value; replace it instead"
        ) from None
    return secret


def _replace(secret: Secret, value: str) -> None:
    secret.set_value(value)
    secret.save(update_fields=["ciphertext", "updated_at"])


@transaction.atomic(durable=True)
def secret_create(
    *, workspace: Workspace, name: Any, environment: Any, value: Any, actor: str
) -> Secret:
    secret = _insert(
        workspace=workspace,
        name=validate_name(name),
        environment=validate_environment(environment),
        value=validate_value(value),
    )
    record_audit(
        workspace=workspace,
        actor=actor,
        action="secret.created",
        target=_target(secret),
        details=_details(secret),
    )
    return secret


@transaction.atomic(durable=True)
def secret_update(*, secret: Secret, value: Any, actor: str) -> Secret:
    value = validate_value(value)
    locked = Secret.objects.select_for_update().filter(pk=secret.pk).first()
    if locked is None:
        raise SecretNotFound("the secret was deleted meanwhile")
    _replace(locked, value)
    record_audit(
        workspace=locked.workspace,
        actor=actor,
        action="secret.updated",
        target=_target(locked),
        details=_details(locked),
    )
    return locked


@transaction.atomic(durable=True)
def secret_set(
    *, workspace: Workspace, name: Any, environment: Any, value: Any, actor: str
) -> tuple[Secret, bool]:
    """Set or replace the value of (name, environment): the matrix page's one form.

    Returns the secret and whether it was created.
    """
    name, environment = validate_name(name), validate_environment(environment)
    value = validate_value(value)
    for _ in range(2):  # a concurrent create between the lookup and the insert: look again
        existing = (
            Secret.objects.select_for_update()
            .filter(workspace=workspace, name=name, environment=environment)
            .first()
        )
        if existing is not None:
            _replace(existing, value)
            action, secret, created = "secret.updated", existing, False
            break
        try:
            secret = _insert(workspace=workspace, name=name, environment=environment, value=value)
        except SecretConflict:
            continue
        action, created = "secret.created", True
        break
    else:
        raise SecretConflict("the secret is being changed by someone else; try again")
    record_audit(
        workspace=workspace,
        actor=actor,
        action=action,
        target=_target(secret),
        details=_details(secret),
    )
    return secret, created


@transaction.atomic(durable=True)
def secret_delete(*, secret: Secret, actor: str) -> None:
    deleted, _ = Secret.objects.filter(pk=secret.pk).delete()
    if not deleted:
        raise SecretNotFound("the secret was deleted meanwhile")
    record_audit(
        workspace=secret.workspace,
        actor=actor,
        action="secret.deleted",
        target=_target(secret),
        details=_details(secret),
    )


def _check_same_workspace(secret: Secret, profile) -> None:
    if profile.workspace_id != secret.workspace_id:
        raise SecretNotFound("no such agent profile in this workspace")


def _grant(secret: Secret, profile, actor: str) -> bool:
    _check_same_workspace(secret, profile)
    through = Secret.granted_to.through
    _, created = through.objects.get_or_create(secret_id=secret.pk, agentprofile_id=profile.pk)
    if created:
        record_audit(
            workspace=secret.workspace,
            actor=actor,
            action="secret.granted",
            target=_target(secret),
            details=_details(secret, profile=str(profile.code), profile_name=profile.name),
        )
    return created


def _ungrant(secret: Secret, profile, actor: str) -> bool:
    _check_same_workspace(secret, profile)
    through = Secret.granted_to.through
    removed, _ = through.objects.filter(secret_id=secret.pk, agentprofile_id=profile.pk).delete()
    if removed:
        record_audit(
            workspace=secret.workspace,
            actor=actor,
            action="secret.ungranted",
            target=_target(secret),
            details=_details(secret, profile=str(profile.code), profile_name=profile.name),
        )
    return bool(removed)


@transaction.atomic(durable=True)
def secret_grant(*, secret: Secret, profile, actor: str) -> bool:
    """Grant the secret (this environment's value) to an agent profile; False if it was."""
    return _grant(secret, profile, actor)


@transaction.atomic(durable=True)
def secret_ungrant(*, secret: Secret, profile, actor: str) -> bool:
    """Withdraw a grant; False if there was none."""
    return _ungrant(secret, profile, actor)


@transaction.atomic(durable=True)
def profile_grants_set(
    *, workspace: Workspace, profile, secret_codes: list[str], actor: str
) -> int:
    """Make exactly these secrets (by code) the profile's grants; returns how many changed."""
    if profile.workspace_id != workspace.pk:
        raise SecretNotFound("no such agent profile in this workspace")
    try:
        codes = {uuid.UUID(str(code)) for code in secret_codes}
    except ValueError:
        raise SecretError("secret ids must be UUIDs") from None
    wanted = list(Secret.objects.filter(workspace=workspace, code__in=codes))
    if len(wanted) != len(codes):
        raise SecretNotFound("one of the chosen secrets is not in this workspace")
    # Lock the profile so two admins saving its grants at once apply one after the other.
    type(profile).objects.select_for_update().filter(pk=profile.pk).first()
    current = list(profile.granted_secrets.select_related("workspace"))
    wanted_pks = {secret.pk for secret in wanted}
    current_pks = {secret.pk for secret in current}
    changed = 0
    for secret in wanted:
        if secret.pk not in current_pks:
            secret.workspace = workspace
            changed += _grant(secret, profile, actor)
    for secret in current:
        if secret.pk not in wanted_pks:
            changed += _ungrant(secret, profile, actor)
    return changed


# --- runs --------------------------------------------------------------------------------


def run_environment(project) -> str:
    """The environment a project's runs happen in: its policy's `environment`, else dev."""
    raw = (project.policy or {}).get("environment", DEFAULT_ENVIRONMENT)
    if raw not in ENVIRONMENTS:
        raise SecretsUnavailable(
            f"the project's policy sets environment {str(raw)[:40]!r}; "
            f"use one of {', '.join(ENVIRONMENTS)}"
        )
    return raw


def secrets_for_run(run) -> dict[str, str]:
    """The values a run may use: granted to its profile, in its project's environment.

    Every value handed over is audited as `secret.accessed`, in one transaction.
    """
    if run.profile_id is None:
        return {}
    environment = run_environment(run.project)
    granted = list(
        run.profile.granted_secrets.filter(
            workspace_id=run.workspace_id, environment=environment
        ).order_by("name")
    )
    values = {}
    for secret in granted:
        try:
            values[secret.name] = secret.reveal()
        except crypto.SecretUnreadable:
            raise SecretsUnavailable(
                f"secret {secret.name} ({environment}) cannot be decrypted with the configured keys"
            ) from None
    if granted:
        with transaction.atomic():
            for secret in granted:
                record_audit(
                    workspace=run.workspace,
                    actor=f"agent:{run.profile.name}",
                    action="secret.accessed",
                    target=_target(secret),
                    details=_details(secret, run=str(run.code)),
                )
    return values


# --- rotation ----------------------------------------------------------------------------


@dataclass
class RotationReport:
    total: int = 0
    rotated: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)  # labels, never values

    @property
    def ok(self) -> bool:
        return not self.unreadable


def secrets_rotate(*, batch_size: int = ROTATE_BATCH_SIZE, actor: str = "system") -> RotationReport:
    """Re-encrypt every secret with the newest key, batch by batch.

    Each batch is one transaction (rows locked, one UPDATE per 500 rows, one audit
    entry), so a crash leaves whole batches done and the rest as they were. Values the
    newest key already encrypts are left alone, so a second run changes nothing. A value
    no configured key can read stays untouched and is reported.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    crypto.reset_cipher()  # the keys as the environment holds them now
    report = RotationReport()
    last_pk = 0
    while True:
        with transaction.atomic():
            batch = list(
                Secret.objects.select_for_update()
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .only("pk", "workspace_id", "name", "environment", "ciphertext")[:batch_size]
            )
            if not batch:
                break
            last_pk = batch[-1].pk
            _rotate_batch(batch, report, actor)
    return report


def _rotate_batch(batch: list[Secret], report: RotationReport, actor: str) -> None:
    changed = []
    for secret in batch:
        report.total += 1
        if crypto.is_current(secret.ciphertext):
            report.current += 1
            continue
        try:
            secret.ciphertext = crypto.rotate(secret.ciphertext)
        except crypto.SecretUnreadable:
            report.unreadable.append(
                f"{secret.name} ({secret.environment}) in workspace {secret.workspace_id}"
            )
            continue
        changed.append(secret)
    _store_ciphertexts(changed)
    report.rotated += len(changed)
    if changed:
        # Keys belong to the whole installation, so rotation is audited in the global chain,
        # once per batch: a per-workspace entry cost a third of the rotation's time.
        record_audit(
            workspace=None,
            actor=actor,
            action="secrets.rotated",
            target="secrets",
            details={
                "rotated": len(changed),
                "workspaces": len({secret.workspace_id for secret in changed}),
            },
        )


def _store_ciphertexts(changed: list[Secret], chunk: int = 500) -> None:
    """Write new ciphertexts, leaving updated_at alone (the value did not change).

    One UPDATE joined to a VALUES list per chunk (PostgreSQL and SQLite alike):
    `bulk_update` builds a CASE arm per row in the ORM, which measured 5 to 11 s for
    10,000 secrets here, against the 10 s a full rotation is allowed.
    """
    table = connection.ops.quote_name(Secret._meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(changed), chunk):
            part = changed[start : start + chunk]
            rows = ", ".join(["(%s, %s)"] * len(part))
            cursor.execute(
                f"UPDATE {table} SET ciphertext = v.column2 FROM (VALUES {rows}) AS v "
                f"WHERE {table}.id = v.column1",
                [param for secret in part for param in (secret.pk, secret.ciphertext)],
            )
