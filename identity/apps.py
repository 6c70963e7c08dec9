from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Sign-in and identity"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.crypto import register_rotation
        from identity import signals  # noqa: F401  (connects the login receivers)
        from identity.rotation import identity_secrets_rotate

        register_rotation("sign-in keys (TOTP, SSO client secrets)", identity_secrets_rotate)
