"""The project websocket: who may subscribe, and what a change pushes to whom (stages.live)."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from freight.models import Freight
from kargo_ui.routing import websocket_urlpatterns
from projects.live import send_change, sequences
from projects.models import Membership
from stages import live
from stages.models import Promotion, Stage

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
    settings.LIVE_COALESCE_SECONDS = 0.05


async def open_page(user, drawer: str = "", **watch) -> WebsocketCommunicator:
    comm = communicator(user)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data=json.dumps({"watch": {"drawer": drawer, **watch}}))
    return comm


async def change(project_id: int, kind: str, obj_id: int) -> None:
    await database_sync_to_async(send_change)(project_id, kind, obj_id)


def test_a_stage_change_pushes_its_card_and_its_open_drawer(users):
    stage = Stage.objects.get(name="test")

    async def scenario():
        comm = await open_page(users["carol"], f"stage-drawer-{stage.id}")
        await change(stage.project_id, "stage", stage.id)
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = run(scenario)
    assert html.startswith('<div id="live-seq"')
    assert f'id="stage-{stage.id}"' in html
    assert f'id="stage-drawer-{stage.id}"' in html
    # Only what the change touches: not the whole pipeline or timeline.
    assert 'id="pipeline"' not in html and 'id="timeline"' not in html
    # Carol is a viewer: the pushed fragments carry no promote buttons.
    assert "promote-to-" not in html and 'data-testid="promote-' not in html


def test_a_page_gets_only_the_drawer_it_has_open(users):
    stage = Stage.objects.get(name="test")
    other = Stage.objects.exclude(id=stage.id).first()

    async def scenario():
        mine = await open_page(users["bob"], f"stage-drawer-{stage.id}")
        theirs = await open_page(users["bob"], f"stage-drawer-{other.id}")
        plain = await open_page(users["bob"])
        await change(stage.project_id, "stage", stage.id)
        pushed = [await c.receive_from(timeout=5) for c in (mine, theirs, plain)]
        for c in (mine, theirs, plain):
            await c.disconnect()
        return pushed

    mine, theirs, plain = run(scenario)
    assert f'id="stage-drawer-{stage.id}"' in mine
    for html in (theirs, plain):
        assert "stage-drawer-" not in html
        assert f'id="stage-{stage.id}"' in html  # every page shows the card


def test_outsiders_and_anonymous_users_are_refused(users):
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
        comm = await open_page(users["carol"])
        await database_sync_to_async(Membership.objects.filter(user=users["carol"]).delete)()
        await change(stage.project_id, "stage", stage.id)
        return await comm.receive_output(timeout=5)

    assert run(scenario) == {"type": "websocket.close", "code": 4403}


def test_a_promotion_change_pushes_its_card_and_open_drawer(users):
    from kargo_ui.celery import app
    from stages.actions import do_promote

    freight = Freight.objects.first()
    app.conf.task_always_eager = False
    try:
        promotion = do_promote(Stage.objects.get(name="test"), freight, actor="user:x")
    finally:
        app.conf.task_always_eager = True

    async def scenario():
        comm = await open_page(users["bob"], f"promotion-drawer-{promotion.id}")
        await change(promotion.project_id, "promotion", promotion.id)
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = run(scenario)
    assert f'id="promotion-drawer-{promotion.id}"' in html
    assert 'data-phase="Pending"' in html
    assert f'id="stage-{promotion.stage_id}"' in html and "1 queued" in html


def test_the_socket_takes_no_commands(users):
    """Actions are POSTs with CSRF and role checks; a message on the socket does nothing."""
    freight = Freight.objects.first()

    async def scenario():
        comm = communicator(users["carol"])
        assert (await comm.connect())[0]
        command = {"action": "promote", "stage": "test", "freight": freight.name}
        await comm.send_to(text_data=json.dumps(command))
        await comm.send_to(text_data=json.dumps({"watch": {"drawer": "../../etc", "seq": "x"}}))
        await comm.send_to(text_data="[" * 10_000)
        nothing = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return nothing

    assert run(scenario) is True
    assert not Promotion.objects.exists()


def test_a_burst_of_changes_is_rendered_once_per_push_for_all_pages_of_a_role(users, settings):
    """Ten open pages of promoters and twenty changes within one window: the first change goes
    out at once, the rest together at the end of the window, each push rendered once for all
    ten pages."""
    # A window far longer than sending twenty changes takes, even on a loaded machine.
    settings.LIVE_COALESCE_SECONDS = 1.0
    stages = list(Stage.objects.all())

    def burst():
        for i in range(20):
            stage = stages[i % len(stages)]
            send_change(stage.project_id, "stage", stage.id)

    async def scenario():
        comms = [await open_page(users["bob"]) for _ in range(10)]
        before = dict(live.stats)
        await database_sync_to_async(burst)()
        pages = []
        for c in comms:
            messages = [await c.receive_from(timeout=5)]
            while not await c.receive_nothing(timeout=1.5):
                messages.append(await c.receive_from(timeout=5))
            pages.append(messages)
        after = dict(live.stats)
        for c in comms:
            await c.disconnect()
        return pages, after["renders"] - before["renders"]

    pages, renders = run(scenario)
    assert 1 <= renders <= 2
    assert all(len(messages) == renders for messages in pages)
    assert len({tuple(messages) for messages in pages}) == 1  # the same for every page
    for stage in stages:
        assert f'id="stage-{stage.id}"' in "".join(pages[0])


def test_a_push_with_nothing_new_for_a_page_leaves_its_numbering_whole(users):
    """A change whose fragments a page already has sends it nothing, and the next push's
    data-from still follows the last number the page was sent (no false gap, no re-sync)."""
    stage, other = list(Stage.objects.all()[:2])

    async def scenario():
        comm = await open_page(users["carol"])
        await change(stage.project_id, "stage", stage.id)
        first = await comm.receive_from(timeout=5)
        await change(stage.project_id, "stage", stage.id)  # nothing changed: nothing sent
        quiet = await comm.receive_nothing(timeout=0.5)
        await database_sync_to_async(Stage.objects.filter(id=other.id).update)(
            status={"conditions": [{"type": "Ready", "status": "False", "reason": "X"}]}
        )
        await change(other.project_id, "stage", other.id)
        second = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return first, quiet, second

    first, quiet, second = run(scenario)
    number = int(first.split('data-seq="')[1].split('"')[0])
    assert quiet is True
    assert f'data-from="{number + 1}"' in second and "data-resync" not in second


def test_a_lost_change_is_noticed_and_every_page_re_synced(users, monkeypatch):
    """A change the channel layer shed leaves a gap in the numbers: the feed waits for it a
    moment, counts it lost, and sends every page its regions whole."""
    monkeypatch.setattr(live, "LOSS_WAIT_SECONDS", 0.2)
    stage = Stage.objects.get(name="test")

    async def scenario():
        comm = await open_page(users["carol"])
        before = live.stats["lost_changes"]
        await database_sync_to_async(sequences.next)(stage.project_id)  # numbered, never sent
        await change(stage.project_id, "stage", stage.id)
        # The change that did arrive (pushed alone, or inside the re-sync when the machine is
        # slow enough that the wait is over first), then the re-sync.
        messages = [await comm.receive_from(timeout=5)]
        while "data-resync" not in messages[-1]:
            messages.append(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return messages[0], messages[-1], live.stats["lost_changes"] - before

    first, resync, lost = run(scenario)
    assert f'id="stage-{stage.id}"' in first
    assert 'id="pipeline"' in resync and 'id="timeline"' in resync and 'id="activity"' in resync
    assert lost == 1


def test_a_page_rendered_before_the_latest_change_is_re_synced_when_it_connects(users):
    stage = Stage.objects.get(name="test")

    async def scenario():
        comm = communicator(users["carol"])
        assert (await comm.connect())[0]
        seen = await database_sync_to_async(sequences.current)(stage.project_id)
        await comm.send_to(text_data=json.dumps({"watch": {"seq": seen - 1}}))
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    # One change the page has not seen (its number is above what the page says it was rendered at).
    send_change(stage.project_id, "stage", stage.id)
    html = run(scenario)
    assert "data-resync" in html and 'id="pipeline"' in html


def test_a_failing_channel_layer_is_retried_and_the_pages_re_synced(users, monkeypatch):
    """If receiving from the channel layer fails (Redis went away), the feed keeps listening and
    re-syncs its pages, which may have missed changes meanwhile."""
    monkeypatch.setattr(live, "RETRY_SECONDS", 0.01)

    async def scenario():
        comm = await open_page(users["carol"])
        stage = await Stage.objects.afirst()
        loop = live.asyncio.get_running_loop()
        feed = live.feeds[(id(loop), stage.project_id)]
        real_receive, failures = feed.layer.receive, [1]

        async def flaky_receive(channel):
            if failures:
                failures.pop()
                raise ConnectionError("redis went away")
            return await real_receive(channel)

        feed.layer.receive = flaky_receive
        feed.receiver.cancel()
        feed.receiver = live.asyncio.create_task(feed.receive())
        html = await comm.receive_from(timeout=20)
        await change(stage.project_id, "stage", stage.id)
        after = await comm.receive_from(timeout=20)
        feed.layer.receive = real_receive
        await comm.disconnect()
        return html, after, stage

    html, after, stage = run(scenario)
    assert "data-resync" in html and 'id="pipeline"' in html
    assert f'id="stage-{stage.id}"' in after  # still listening
