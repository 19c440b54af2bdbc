from django.urls import path

from .consumers import ProjectConsumer

websocket_urlpatterns = [
    path("ws/project/<str:name>/", ProjectConsumer.as_asgi()),
]
