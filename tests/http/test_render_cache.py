"""The page's render cache (stages.fragments) never shows a card older than what it shows."""

from freight.actions import do_update_alias
from stages.models import Stage

from .test_views import login, promote_without_steps


def card_of(body: str, stage: Stage) -> str:
    card = body[body.index(f'id="stage-{stage.id}"') :]
    return card[: card.index("</div>\n</div>")]


def test_a_new_alias_of_the_freight_a_stage_holds_shows_on_its_card(client, users, freight):
    stage = Stage.objects.get(name="test")
    promote_without_steps(stage, freight)
    client = login(client, users["carol"])
    assert freight.alias in card_of(client.get("/project/kargo-demo/").content.decode(), stage)
    do_update_alias(freight, "renamed-freight", "user:x")
    card = card_of(client.get("/project/kargo-demo/").content.decode(), stage)
    assert "renamed-freight" in card


def test_a_finished_promotion_shows_on_the_card_the_page_had_cached(client, users, freight):
    stage = Stage.objects.get(name="test")
    client = login(client, users["carol"])
    assert "No Freight yet" in card_of(client.get("/project/kargo-demo/").content.decode(), stage)
    promote_without_steps(stage, freight)
    card = card_of(client.get("/project/kargo-demo/").content.decode(), stage)
    assert "No Freight yet" not in card and freight.alias in card and "Succeeded" in card
