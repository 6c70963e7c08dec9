from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from identity.models import OidcProvider


class LoginForm(AuthenticationForm):
    """Django's sign-in form, saying so when the lockout refused the try."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            locked = getattr(self.request, "identity_locked_out", None)
            if locked is not None:
                raise ValidationError(locked.message, code="locked_out") from None
            raise

    @property
    def locked_out(self):
        return getattr(self.request, "identity_locked_out", None)


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
        help_text="The 6 digits from your authenticator app, or one of your recovery codes.",
    )


class OidcProviderForm(forms.ModelForm):
    """The SSO settings; the client secret is write-only (blank keeps the stored one)."""

    issuer = forms.URLField(
        max_length=300,
        assume_scheme="https",
        help_text="The issuer URL; its /.well-known/openid-configuration is read.",
    )
    client_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: never shown again. Leave blank to keep the stored secret.",
    )

    class Meta:
        model = OidcProvider
        fields = [
            "issuer",
            "client_id",
            "client_secret",
            "allowed_email_domain",
            "default_role",
            "create_users",
            "is_enabled",
        ]

    def clean_allowed_email_domain(self) -> str:
        domain = self.cleaned_data["allowed_email_domain"].strip().lower().lstrip("@")
        if not domain or "@" in domain or "." not in domain or " " in domain:
            raise ValidationError("Give one domain, such as example.com.")
        return domain

    def clean_issuer(self) -> str:
        issuer = self.cleaned_data["issuer"]
        if not issuer.startswith("https://") and not _is_local(issuer):
            raise ValidationError("The issuer must be an https:// URL.")
        return issuer

    def clean(self):
        cleaned = super().clean()
        if not self.instance.client_secret_ciphertext and not cleaned.get("client_secret"):
            self.add_error("client_secret", "A client secret is required.")
        return cleaned

    def save(self, commit: bool = True) -> OidcProvider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("client_secret"):
            provider.set_client_secret(self.cleaned_data["client_secret"])
        if commit:
            provider.save()
        return provider


def _is_local(url: str) -> bool:
    # Plain http only for a provider on this machine, and only where allowed (development,
    # the tests): elsewhere it would let the code exchange be read on the wire.
    parts = urlsplit(url)
    return (
        settings.IDENTITY_OIDC_ALLOW_LOCAL_HTTP
        and parts.scheme == "http"
        and parts.hostname in {"127.0.0.1", "localhost", "::1"}
    )
