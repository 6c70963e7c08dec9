from __future__ import annotations

from django.contrib import admin

from identity.forms import OidcProviderForm
from identity.models import LoginThrottle, OidcIdentity, OidcProvider, TotpDevice


@admin.register(OidcProvider)
class OidcProviderAdmin(admin.ModelAdmin):
    form = OidcProviderForm
    list_display = ["workspace", "issuer", "client_id", "allowed_email_domain", "is_enabled"]
    list_filter = ["is_enabled"]
    search_fields = ["workspace__name", "issuer", "client_id"]
    autocomplete_fields = ["workspace"]
    fields = ["workspace", *OidcProviderForm.Meta.fields]

    def save_model(self, request, obj, form, change) -> None:
        from identity import sso

        sso.provider_save(form=form, actor=f"user:{request.user.get_username()}")


@admin.register(OidcIdentity)
class OidcIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "provider", "subject", "created_at", "last_login_at"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["provider", "subject", "user", "created_at", "last_login_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(TotpDevice)
class TotpDeviceAdmin(admin.ModelAdmin):
    """Listing and removal only (a person who lost every factor); the key never shows."""

    list_display = ["user", "created_at", "confirmed_at"]
    search_fields = ["user__username"]
    fields = ["user", "created_at", "confirmed_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        from identity import twofactor

        twofactor.totp_disable(user=obj.user, actor=f"user:{request.user.get_username()}")

    def delete_queryset(self, request, queryset) -> None:
        for device in queryset.select_related("user"):
            self.delete_model(request, device)


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Lockouts in force; deleting a row lifts it."""

    list_display = ["scope", "key", "failures", "window_started_at", "locked_until"]
    list_filter = ["scope"]
    search_fields = ["key"]
    readonly_fields = list_display

    def has_add_permission(self, request) -> bool:
        return False
