from django.urls import path

from review.consumers import ChangeSetConsumer

websocket_urlpatterns = [
    path("ws/review/c/<uuid:code>/", ChangeSetConsumer.as_asgi()),
]
