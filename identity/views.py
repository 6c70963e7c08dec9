"""Sign-in pages: password (+ lockout), the TOTP step, two-factor settings, workspace SSO."""

from __future__ import annotations

from urllib.parse import urlencode

import segno
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Workspace
from accounts.permissions import Action, can, principal_from_request
from identity import oidc, signin, sso, twofactor
from identity.forms import CodeForm, LoginForm, OidcProviderForm
from identity.lockout import LockedOut
from identity.models import OidcProvider


class LoginView(auth_views.LoginView):
    """Password sign-in; users with TOTP go on to the code step before being signed in."""

    authentication_form = LoginForm

    def form_valid(self, form):
        user = form.get_user()
        if twofactor.totp_enabled(user):
            signin.pending_login_begin(self.request, user, redirect_to=self.get_success_url())
            return redirect("identity:login-verify")
        self.request.identity_login_method = "password"
        return super().form_valid(form)

    def form_invalid(self, form):
        response = super().form_invalid(form)
        locked = form.locked_out
        response.status_code = 429 if locked else 400
        if locked:
            response["Retry-After"] = str(locked.minutes_left * 60)
        return response


@require_GET
def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin signs in through the same page, so its lockout and TOTP step apply."""
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = reverse("admin:index")
    return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': next_url})}")


@never_cache
@require_http_methods(["GET", "POST"])
def login_verify(request: HttpRequest) -> HttpResponse:
    pending = signin.pending_login(request)
    if pending is None:
        signin.pending_login_clear(request)
        messages.info(request, "Your sign-in expired; enter your password again.")
        return redirect("login")
    form = CodeForm(request.POST or None)
    if request.method == "GET":
        return render(request, "identity/login_verify.html", {"form": form})
    if not form.is_valid():
        return render(request, "identity/login_verify.html", {"form": form}, status=400)
    try:
        method = signin.code_check(request, pending.user, form.cleaned_data["code"], step="totp")
    except LockedOut as locked:
        signin.pending_login_clear(request)
        form.add_error(None, locked.message)
        response = render(request, "identity/login_verify.html", {"form": form}, status=429)
        response["Retry-After"] = str(locked.minutes_left * 60)
        return response
    if method is None:
        form.add_error("code", "That code is not valid (or was used already).")
        return render(request, "identity/login_verify.html", {"form": form}, status=400)
    signin.pending_login_clear(request)
    request.identity_login_method = f"password+{method}"
    auth_login(request, pending.user, backend=pending.backend)
    if method == "recovery":
        left = twofactor.recovery_codes_left(pending.user)
        messages.warning(request, f"Recovery code used; {left} left.")
    return redirect(pending.redirect_to)


@never_cache
@login_required
@require_GET
def two_factor(request: HttpRequest) -> HttpResponse:
    context = {
        "enabled": twofactor.totp_enabled(request.user),
        "codes_left": twofactor.recovery_codes_left(request.user),
        "form": CodeForm(),
    }
    return render(request, "identity/two_factor.html", context)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor_enrol(request: HttpRequest) -> HttpResponse:
    try:
        device = twofactor.totp_enrolment_start(user=request.user)
    except twofactor.TwoFactorError as error:
        messages.info(request, str(error))
        return redirect("identity:two-factor")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            codes = twofactor.totp_enrolment_confirm(
                user=request.user, code=form.cleaned_data["code"]
            )
        except twofactor.TwoFactorError as error:
            form.add_error("code", str(error))
        else:
            return _recovery_codes_page(request, codes, enabled_now=True)
    if request.method == "POST":
        status = 400
    uri = twofactor.totp_uri(device)
    context = {
        "form": form,
        "uri": uri,
        "secret": twofactor.totp_secret(device),
        "qr_svg": _qr_svg(uri),
    }
    return render(request, "identity/two_factor_enrol.html", context, status=status)


def _qr_svg(uri: str) -> str:
    # segno writes the SVG from the URI alone (no user text reaches it raw); a white
    # background keeps it scannable in dark mode.
    svg = segno.make(uri, error="m").svg_inline(scale=4, light="#fff", title="QR code")
    return mark_safe(svg)


@never_cache
@login_required
@require_POST
def two_factor_disable(request: HttpRequest) -> HttpResponse:
    if not _current_code_given(request, step="disable"):
        return redirect("identity:two-factor")
    twofactor.totp_disable(user=request.user)
    messages.success(request, "Two-factor authentication is off.")
    return redirect("identity:two-factor")


@never_cache
@login_required
@require_POST
def recovery_codes_regenerate(request: HttpRequest) -> HttpResponse:
    if not _current_code_given(request, step="recovery_codes"):
        return redirect("identity:two-factor")
    try:
        codes = twofactor.recovery_codes_regenerate(user=request.user)
    except twofactor.TwoFactorError as error:
        messages.error(request, str(error))
        return redirect("identity:two-factor")
    return _recovery_codes_page(request, codes, enabled_now=False)


def _current_code_given(request: HttpRequest, *, step: str) -> bool:
    """Whether the POST carries a current code of the user (a message says why not)."""
    form = CodeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a code from your authenticator app.")
        return False
    try:
        method = signin.code_check(request, request.user, form.cleaned_data["code"], step=step)
    except LockedOut as locked:
        messages.error(request, locked.message)
        return False
    if method is None:
        messages.error(request, "That code is not valid (or was used already).")
        return False
    return True


def _recovery_codes_page(request: HttpRequest, codes: list[str], *, enabled_now: bool):
    context = {"codes": codes, "enabled_now": enabled_now}
    return render(request, "identity/recovery_codes.html", context)


@require_GET
def sso_choose(request: HttpRequest) -> HttpResponse:
    slug = request.GET.get("workspace", "").strip().lower()
    if slug:
        return redirect(_with_next(reverse("identity:sso-start", args=[slug]), request))
    return render(request, "identity/sso_choose.html", {"next": request.GET.get("next", "")})


@never_cache
@require_GET
def sso_start(request: HttpRequest, slug: str) -> HttpResponse:
    provider = _provider_or_404(slug)
    redirect_to = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        redirect_to, {request.get_host()}, require_https=request.is_secure()
    ):
        redirect_to = reverse("dashboard:home")
    callback = request.build_absolute_uri(reverse("identity:sso-callback", args=[slug]))
    try:
        url = oidc.authorization_start(
            request, provider, redirect_uri=callback, redirect_to=redirect_to
        )
    except oidc.OidcError as error:
        return _sso_error(request, error)
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def sso_callback(request: HttpRequest, slug: str) -> HttpResponse:
    provider = _provider_or_404(slug)
    try:
        answer = oidc.callback_complete(request, provider)
        user = sso.oidc_user_sign_in(provider=provider, claims=answer.claims)
    except oidc.OidcError as error:
        return _sso_error(request, error)
    request.identity_login_method = "oidc"
    auth_login(request, user, backend="identity.backends.LockoutModelBackend")
    return redirect(answer.redirect_to)


def _provider_or_404(slug: str) -> OidcProvider:
    provider = (
        OidcProvider.objects.select_related("workspace")
        .filter(workspace__slug=slug, is_enabled=True)
        .first()
    )
    if provider is None:
        # The same answer for an unknown workspace and one without SSO.
        raise Http404("No single sign-on is set up for this workspace.")
    return provider


def _sso_error(request: HttpRequest, error: oidc.OidcError) -> HttpResponse:
    return render(request, "identity/sso_error.html", {"error": error.message}, status=error.status)


def _with_next(url: str, request: HttpRequest) -> str:
    next_url = request.GET.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        return f"{url}?{urlencode({'next': next_url})}"
    return url


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def sso_settings(request: HttpRequest, code) -> HttpResponse:
    """A workspace admin sets the workspace's identity provider (secret write-only)."""
    principal = principal_from_request(request)
    workspace = get_object_or_404(Workspace, code=code)
    if not can(principal, Action.VIEW, workspace.pk):
        raise Http404("No such workspace.")
    if not can(principal, Action.ADMIN, workspace.pk):
        return HttpResponse("Only workspace admins may change single sign-on.", status=403)
    instance = OidcProvider.objects.filter(workspace=workspace).first() or OidcProvider(
        workspace=workspace
    )
    form = OidcProviderForm(request.POST or None, instance=instance)
    if request.method == "POST":
        if form.is_valid():
            sso.provider_save(form=form, actor=principal.label)
            messages.success(request, "Single sign-on settings saved.")
            return redirect("identity:sso-settings", code=workspace.code)
        status = 400
    else:
        status = 200
    context = {"workspace": workspace, "form": form, "provider": instance}
    return render(request, "identity/sso_settings.html", context, status=status)
