from django.urls import path

from identity import views

app_name = "identity"

urlpatterns = [
    path("login/verify/", views.login_verify, name="login-verify"),
    path("account/two-factor/", views.two_factor, name="two-factor"),
    path("account/two-factor/enrol/", views.two_factor_enrol, name="two-factor-enrol"),
    path("account/two-factor/disable/", views.two_factor_disable, name="two-factor-disable"),
    path(
        "account/two-factor/recovery-codes/",
        views.recovery_codes_regenerate,
        name="recovery-codes",
    ),
    path("sso/", views.sso_choose, name="sso"),
    path("sso/<slug:slug>/", views.sso_start, name="sso-start"),
    path("sso/<slug:slug>/callback/", views.sso_callback, name="sso-callback"),
    path("w/<uuid:code>/sso/", views.sso_settings, name="sso-settings"),
]
