from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    AUTHOR = "author", "Author"
    REVIEWER = "reviewer", "Reviewer"
    READER = "reader", "Reader"


class AgentRole(models.TextChoices):
    """The roles an agent can work in; each agent token is bound to exactly one."""

    PM = "pm", "Orion (product manager)"
    TESTER = "tester", "Tara (tester)"
    DEVELOPER = "developer", "Devon (developer)"
    QA = "qa", "QA/Breaker (adversarial tests)"
    DEVOPS = "devops", "DevOps (Dockerfile, CI)"
    PROMPT = "prompt", "Prompt engineer"
    PRODUCT = "product", "Product manager (acceptance criteria)"


class Workspace(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        # One object permission per `accounts.permissions.Action` (view is Django's own);
        # a role is a set of these, granted on the workspace or, as an override, on a project.
        permissions = [
            ("edit_workspace", "Can create and move work"),
            ("review_workspace", "Can review, approve and complete work"),
            ("admin_workspace", "Can manage members, tokens and policies"),
            ("work_workspace", "Can claim and finish agent runs"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def workspace_id(self) -> int:
        # Lets the access helper treat a workspace like any object that belongs to one.
        return self.pk


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="unique_membership"),
        ]
        ordering = ["workspace", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.role}"


class ProjectRole(models.Model):
    """A member's role on one project, replacing their workspace role there (either way)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="project_roles")
    project = models.ForeignKey(
        "orchestration.Project", on_delete=models.CASCADE, related_name="member_roles"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_roles"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_project_role"),
        ]
        ordering = ["project", "user"]

    def __str__(self) -> str:
        return f"{self.user} on {self.project_id} as {self.role}"


class Invite(models.Model):
    """An invitation to join a workspace; the link carries a signed, expiring token."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invites")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "email"], name="invite_workspace_email")]

    def __str__(self) -> str:
        return f"invite of {self.email} to {self.workspace_id} as {self.role}"

    @property
    def is_pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )


# Object permissions with real foreign keys (not guardian's generic rows): deleting a
# workspace, project or user deletes its permission rows, so a reused primary key grants
# nothing, and list filters join on an indexed integer column.
class WorkspaceUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Workspace, on_delete=models.CASCADE)


class WorkspaceGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Workspace, on_delete=models.CASCADE)


class ProjectUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey("orchestration.Project", on_delete=models.CASCADE)


class ProjectGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey("orchestration.Project", on_delete=models.CASCADE)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token: a person's (acts as that user) or an agent's (a workspace and a role).

    Only the SHA-256 of the key is stored; the key itself is shown once at creation.
    """

    class Kind(models.TextChoices):
        USER = "user", "User"
        AGENT = "agent", "Agent"

    PREFIX_LENGTH = 8

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=120)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_tokens",
    )
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, null=True, blank=True, related_name="api_tokens"
    )
    agent_role = models.CharField(max_length=16, choices=AgentRole.choices, blank=True)
    # An agent token may be limited to one project of its workspace.
    project = models.ForeignKey(
        "orchestration.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="agent_tokens",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="token_kind_fields",
                condition=(
                    models.Q(kind="user", user__isnull=False, agent_role="")
                    | models.Q(kind="agent", workspace__isnull=False) & ~models.Q(agent_role="")
                ),
            ),
            models.CheckConstraint(
                name="token_project_only_for_agents",
                condition=models.Q(project__isnull=True) | models.Q(kind="agent"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_key() -> str:
        return "cm_" + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Environment(models.TextChoices):
    """Where a run happens; each secret holds one value per environment."""

    DEV = "dev", "Development"
    STAGING = "staging", "Staging"
    PROD = "prod", "Production"


class Secret(models.Model):
    """A workspace secret (API key, token), stored encrypted and never shown again.

    Agent commands see a secret only when their profile is granted it, as an environment
    variable named after the secret.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                r"^[A-Z][A-Z0-9_]*$",
                "use an environment variable name: capitals, digits and underscores",
            )
        ],
    )
    environment = models.CharField(
        max_length=16, choices=Environment.choices, default=Environment.DEV
    )
    ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "name", "environment"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name", "environment"], name="unique_secret_name_environment"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.environment}] (secret)"

    def __repr__(self) -> str:
        return f"<Secret {self.name} [{self.environment}] ******>"

    def set_value(self, plaintext: str) -> None:
        from accounts.crypto import encrypt
        from accounts.scrubbing import remember

        # Whatever this process has held in clear is kept out of everything it writes down.
        remember([plaintext])
        self.ciphertext = encrypt(plaintext)

    def reveal(self) -> str:
        from accounts.crypto import decrypt
        from accounts.scrubbing import remember

        value = decrypt(self.ciphertext)
        remember([value])
        return value
