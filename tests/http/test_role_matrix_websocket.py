"""The role matrix's websocket surface (test_role_matrix.py has the rest): who may open a
project's socket, and that it takes no commands. Like test_consumers.py these tests commit and
flush the database after each (database_sync_to_async closes a rolled-back test's connection), so
they build their own world and live apart from the matrix's shared one.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from kargo_ui.routing import websocket_urlpatterns
from projects.models import Event
from projects.tokens import do_create_token
from stages.models import Stage
from tests.http.test_role_matrix import CAST


def connect(user, headers=()):
    async def scenario():
        comm = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns), "/ws/project/kargo-demo/", headers=list(headers)
        )
        comm.scope["user"] = user
        connected, code = await comm.connect()
        if connected:
            # The socket takes no commands: whatever a client sends is ignored.
            await comm.send_json_to({"action": "abort", "promotion": "x"})
            assert await comm.receive_nothing(timeout=0.2)
            await comm.disconnect()
        return connected, code

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "role,accepted",
    [
        ("viewer", True),
        ("promoter", True),
        ("admin", True),
        ("outsider", False),
        ("anonymous", False),
    ],
)
def test_websocket_connect(settings, users, role, accepted):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    user = AnonymousUser() if role == "anonymous" else users[CAST[role]]
    before = Event.objects.count()
    connected, code = connect(user)
    assert connected is accepted
    if not accepted:
        assert code == 4403
    assert Event.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_a_token_does_not_open_the_websocket(settings, users):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    project = Stage.objects.get(name="test").project
    _, secret = do_create_token(project, "admin-token", "admin", "fixture")
    headers = [(b"authorization", f"Bearer {secret}".encode())]
    assert connect(AnonymousUser(), headers) == (False, 4403)
