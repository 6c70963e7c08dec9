from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from identity import views as identity_views

urlpatterns = [
    # The admin signs in through our page, so the lockout and the TOTP step apply there too.
    path("admin/login/", identity_views.admin_login),
    path("admin/", admin.site.urls),
    path("login/", identity_views.LoginView.as_view(), name="login"),
    path("", include("identity.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("orchestration.api.urls")),
    path("api/v1/", include("review.api_urls")),
    path("api/v1/", include("accounts.secrets_api")),
    path("api/v1/", include("accounts.access_api")),
    path("api/v1/", include("audit.api_urls")),
    path("api/v1/", include("ratelimits.api_urls")),
    path("api/agent/", include("agents.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its init script from a URL: no inline script under our CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("review/", include("review.urls")),
    path("", include("accounts.urls")),
    path("", include("accounts.secrets_views")),
    path("", include("audit.urls")),
    path("", include("dashboard.urls")),
]
