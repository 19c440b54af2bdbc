from stages.routing import websocket_urlpatterns as stage_websockets

websocket_urlpatterns = [*stage_websockets]
