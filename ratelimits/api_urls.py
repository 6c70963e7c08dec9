from django.urls import path

from ratelimits.api import WorkspaceRateLimitsView

urlpatterns = [
    path(
        "workspaces/<uuid:code>/rate-limits/",
        WorkspaceRateLimitsView.as_view(),
        name="api-workspace-rate-limits",
    ),
]
