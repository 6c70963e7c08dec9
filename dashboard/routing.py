from django.urls import path

from dashboard.consumers import WorkspaceConsumer

websocket_urlpatterns = [
    path("ws/w/<uuid:code>/", WorkspaceConsumer.as_asgi()),
]
