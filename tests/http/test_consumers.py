"""The project websocket: who may subscribe, and what a change pushes."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from freight.models import Freight
from kargo_ui.routing import websocket_urlpatterns
from projects.live import send_change
from projects.models import Membership
from stages.models import Stage

# Consumers reach the database through database_sync_to_async, which closes "old" connections
# around each call: inside a test's rolled-back transaction that closes the test's own
# connection, so these tests commit for real and the database is flushed after each.
pytestmark = pytest.mark.django_db(transaction=True)


def communicator(user, project="kargo-demo") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/project/{project}/")
    comm.scope["user"] = user
    return comm


def run(coro_fn):
    return async_to_sync(coro_fn)()


@pytest.fixture(autouse=True)
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def test_members_receive_fragments_for_changes(users):
    stage = Stage.objects.get(name="test")

    async def scenario():
        comm = communicator(users["carol"])
        connected, _ = await comm.connect()
        assert connected
        from channels.db import database_sync_to_async

        await database_sync_to_async(send_change)(stage.project_id, "stage", stage.id)
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = run(scenario)
    assert 'id="pipeline"' in html
    assert 'id="timeline"' in html
    assert f'id="stage-drawer-{stage.id}"' in html
    # Carol is a viewer: the pushed fragments carry no promote buttons.
    assert "promote-to-" not in html and 'data-testid="promote-' not in html


def test_outsiders_and_anonymous_users_are_refused(users):
    from django.contrib.auth.models import AnonymousUser

    async def scenario(user, project):
        comm = communicator(user, project)
        connected, code = await comm.connect()
        return connected, code

    assert async_to_sync(scenario)(users["dave"], "kargo-demo") == (False, 4403)
    assert async_to_sync(scenario)(AnonymousUser(), "kargo-demo") == (False, 4403)
    assert async_to_sync(scenario)(users["alice"], "no-such-project") == (False, 4403)


def test_revoked_membership_closes_the_socket_at_the_next_event(users):
    stage = Stage.objects.get(name="test")

    async def scenario():
        from channels.db import database_sync_to_async

        comm = communicator(users["carol"])
        assert (await comm.connect())[0]
        await database_sync_to_async(Membership.objects.filter(user=users["carol"]).delete)()
        await database_sync_to_async(send_change)(stage.project_id, "stage", stage.id)
        output = await comm.receive_output(timeout=5)
        return output

    output = run(scenario)
    assert output == {"type": "websocket.close", "code": 4403}


def test_a_promotion_change_pushes_its_drawer(users):
    from kargo_ui.celery import app
    from stages.actions import do_promote

    freight = Freight.objects.filter(name__isnull=False).first()
    app.conf.task_always_eager = False
    try:
        promotion = do_promote(Stage.objects.get(name="test"), freight, actor="user:x")
    finally:
        app.conf.task_always_eager = True

    async def scenario():
        from channels.db import database_sync_to_async

        comm = communicator(users["bob"])
        assert (await comm.connect())[0]
        await database_sync_to_async(send_change)(promotion.project_id, "promotion", promotion.id)
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = run(scenario)
    assert f'id="promotion-drawer-{promotion.id}"' in html
    assert 'data-phase="Pending"' in html


def test_the_socket_takes_no_commands(users):
    """Actions are POSTs with CSRF and role checks; a message on the socket does nothing."""
    from stages.models import Promotion

    freight = Freight.objects.first()

    async def scenario():
        comm = communicator(users["carol"])
        assert (await comm.connect())[0]
        command = {"action": "promote", "stage": "test", "freight": freight.name}
        await comm.send_to(text_data=json.dumps(command))
        nothing = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return nothing

    assert run(scenario) is True
    assert not Promotion.objects.exists()


def test_each_change_is_rendered_once_per_role_for_all_open_pages(users):
    """Ten open pages of promoters cost one render per change, not ten."""
    from stages.fragments import render_change

    stage = Stage.objects.get(name="test")

    async def scenario():
        from channels.db import database_sync_to_async

        comms = [communicator(users["bob"]) for _ in range(10)]
        for comm in comms:
            assert (await comm.connect())[0]
        before = render_change.cache_info()
        await database_sync_to_async(send_change)(stage.project_id, "stage", stage.id)
        pages = [await comm.receive_from(timeout=5) for comm in comms]
        after = render_change.cache_info()
        for comm in comms:
            await comm.disconnect()
        return pages, after.misses - before.misses

    pages, renders = run(scenario)
    assert renders == 1
    assert len(set(pages)) == 1
