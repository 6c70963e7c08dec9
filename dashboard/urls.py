from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("w/<uuid:code>/", views.workspace_room, name="workspace"),
    path("healthz", views.healthz, name="healthz"),
]
