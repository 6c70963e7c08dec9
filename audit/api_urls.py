from django.urls import path

from audit.api import AuditExportView

urlpatterns = [
    path("workspaces/<uuid:code>/audit/", AuditExportView.as_view(), name="api-workspace-audit"),
]
