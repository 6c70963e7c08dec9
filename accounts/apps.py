from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"

    def ready(self) -> None:
        from accounts import schema, signals  # noqa: F401  (OpenAPI auth extension, role rows)
        from accounts.services import ensure_project_permissions

        post_migrate.connect(
            ensure_project_permissions, sender=self, dispatch_uid="accounts.project_permissions"
        )
