from django.urls import path

from stages.consumers import ProjectConsumer

websocket_urlpatterns = [
    path("ws/project/<str:name>/", ProjectConsumer.as_asgi()),
]
