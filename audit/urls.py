from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("w/<uuid:code>/audit/", views.audit_log, name="log"),
    path("w/<uuid:code>/audit/export/", views.audit_download, name="export"),
]
