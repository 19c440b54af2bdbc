"""A large pipeline's overview: every Stage as a square by depth, a jump-to-Stage form, and the
square pushed live with its card."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from kargo_ui.routing import websocket_urlpatterns
from projects.live import send_change
from stages.fragments import OVERVIEW_FROM
from stages.models import Stage

from .test_views import login, make_pipeline


def test_small_pipelines_have_no_overview(client, users, freight):
    body = login(client, users["carol"]).get("/project/kargo-demo/").content.decode()
    assert 'class="overview"' not in body and 'id="jump-stage"' not in body


def test_a_large_pipeline_shows_every_stage_in_the_overview_by_depth(client, users, freight):
    make_pipeline(freight.project, n_stages=OVERVIEW_FROM, n_freight=0)
    body = login(client, users["carol"]).get("/project/kargo-demo/").content.decode()
    stages = list(Stage.objects.filter(project=freight.project))
    for stage in stages:
        assert f'id="ov-{stage.id}"' in body
        assert f'<option value="{stage.name}">' in body
    overview = body[body.index('class="overview"') : body.index("</nav>")]
    # The demo's test, uat, prod and the extra Stages (after test) make three depth levels.
    assert overview.count('class="ov-level"') == 3


def test_jump_to_a_stage_opens_its_drawer_and_an_unknown_name_says_so(client, users, freight):
    client = login(client, users["carol"])
    response = client.get("/project/kargo-demo/", {"stage": "uat"})
    assert response.status_code == 302
    assert response["Location"] == "/project/kargo-demo/stage/uat/"
    missing = client.get("/project/kargo-demo/", {"stage": "nope"}, follow=True)
    assert missing.status_code == 200
    assert "No Stage named &#x27;nope&#x27; in project kargo-demo." in missing.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_stage_change_pushes_its_overview_square(users, freight, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.LIVE_COALESCE_SECONDS = 0.05
    make_pipeline(freight.project, n_stages=OVERVIEW_FROM, n_freight=0)
    stage = Stage.objects.get(name="test")

    async def scenario():
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/project/kargo-demo/")
        comm.scope["user"] = users["carol"]
        assert (await comm.connect())[0]
        await comm.send_to(text_data=json.dumps({"watch": {}}))
        await database_sync_to_async(send_change)(stage.project_id, "stage", stage.id)
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert f'id="ov-{stage.id}"' in html and f'id="stage-{stage.id}"' in html


def test_cards_count_and_drawers_list_a_stages_steps(client, users, freight):
    stage = Stage.objects.get(name="test")
    steps = stage.spec["promotionTemplate"]["spec"]["steps"]
    assert steps and stage.steps == steps
    client = login(client, users["carol"])
    body = client.get("/project/kargo-demo/").content.decode()
    card = body[body.index(f'id="stage-{stage.id}"') :]
    card = card[: card.index('class="slot"')] if 'class="slot"' in card else card
    assert f"{len(steps)} step" in card
    drawer = client.get("/project/kargo-demo/stage/test/").content.decode()
    assert f"<code>{steps[0]['uses']}</code>" in drawer
    assert "Control-flow Stage (no steps)" not in drawer
