"""Keep guardian's permission rows in step with memberships and project overrides.

Signals rather than service calls, so every way of saving a membership (services, the
admin, fixtures in tests) grants exactly its role, and deleting one revokes everything.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import services
from accounts.models import Membership, ProjectRole, ProjectUserObjectPermission


@receiver(post_save, sender=Membership, dispatch_uid="accounts.membership_saved")
def membership_saved(sender, instance: Membership, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    services.grant_workspace_role(
        user_id=instance.user_id, workspace_id=instance.workspace_id, role=instance.role
    )


@receiver(post_delete, sender=Membership, dispatch_uid="accounts.membership_deleted")
def membership_deleted(sender, instance: Membership, **kwargs) -> None:
    services.grant_workspace_role(
        user_id=instance.user_id, workspace_id=instance.workspace_id, role=None
    )
    # A former member keeps no override either: their project rows go with them.
    ProjectRole.objects.filter(
        workspace_id=instance.workspace_id, user_id=instance.user_id
    ).delete()
    ProjectUserObjectPermission.objects.filter(
        user_id=instance.user_id, content_object__workspace_id=instance.workspace_id
    ).delete()


@receiver(post_save, sender=ProjectRole, dispatch_uid="accounts.project_role_saved")
def project_role_saved(sender, instance: ProjectRole, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    services.grant_project_role(
        user_id=instance.user_id, project_id=instance.project_id, role=instance.role
    )


@receiver(post_delete, sender=ProjectRole, dispatch_uid="accounts.project_role_deleted")
def project_role_deleted(sender, instance: ProjectRole, **kwargs) -> None:
    services.grant_project_role(user_id=instance.user_id, project_id=instance.project_id, role=None)
