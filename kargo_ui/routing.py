from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from stages.routing import websocket_urlpatterns as stage_websockets


class NoRouteConsumer(AsyncWebsocketConsumer):
    """A websocket to a path no app serves (/ws/nope/, /ws/project/ without a name): refused at
    the handshake, which the client sees as HTTP 403 (4404 to an ASGI test), rather than an
    exception in the server."""

    async def connect(self):
        await self.close(code=4404)


websocket_urlpatterns = [*stage_websockets, re_path(r"", NoRouteConsumer.as_asgi())]
