"""Promotions asked for over HTTP (pages and API) that really run their steps: the demo's git
repositories, cloned, rendered and pushed. Moved from tests/http, which runs no git."""

import json

import pytest

from freight.models import Freight
from stages.models import Promotion


@pytest.fixture
def freight(demo):
    return Freight.objects.filter(project=demo).first()


def login(client, user):
    client.force_login(user)
    return client


def post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_promote_by_freight_alias_and_origin(client, users, freight):
    client.force_login(users["bob"])
    response = post(
        client,
        "/api/v1/projects/kargo-demo/stages/test/promotions",
        {"freightAlias": freight.alias},
    )
    assert response.status_code == 201
    name = response.json()["metadata"]["name"]
    assert (
        client.get(f"/api/v1/projects/kargo-demo/promotions/{name}").json()["status"]["phase"]
        == "Succeeded"
    )
    response = post(
        client,
        "/api/v1/projects/kargo-demo/stages/uat/promotions",
        {"origin": "Warehouse/guestbook"},
    )
    assert response.status_code == 201
    assert response.json()["spec"]["freight"] == freight.name


def test_promoter_promotes_from_the_freight_drawer(client, users, freight):
    client = login(client, users["bob"])
    drawer = client.get(
        f"/project/kargo-demo/freight/{freight.name}/",
        headers={"HX-Request": "true", "HX-Target": "drawer"},
    ).content.decode()
    assert 'data-testid="promote-to-test"' in drawer
    assert 'data-testid="promote-to-uat"' not in drawer  # not yet verified in test
    response = client.post(
        "/project/kargo-demo/stage/test/promote",
        {"freight": freight.name},
        headers={"HX-Request": "true", "HX-Target": "drawer"},
    )
    assert response.status_code == 200
    promotion = Promotion.objects.get()
    assert response["HX-Push-Url"] == f"/project/kargo-demo/promotion/{promotion.name}/"
    assert promotion.actor == "email:bob@example.com"
    assert promotion.phase == "Succeeded"  # tasks run inline in tests
    assert 'data-testid="promotion-phase"' in response.content.decode()


def test_promote_without_js_redirects_to_the_promotion(client, users, freight):
    response = login(client, users["bob"]).post(
        "/project/kargo-demo/stage/test/promote", {"freight": freight.name}
    )
    promotion = Promotion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/project/kargo-demo/promotion/{promotion.name}/"
    page = client.get(response["Location"]).content.decode()
    assert "Succeeded" in page and "git-clone" in page


def test_approve_then_promote_to_prod(client, users, freight):
    client = login(client, users["bob"])
    client.post(f"/project/kargo-demo/freight/{freight.name}/approve", {"stage": "prod"})
    freight.refresh_from_db()
    assert "prod" in freight.status["approvedFor"]
    client.post("/project/kargo-demo/stage/prod/promote", {"freight": freight.name})
    assert Promotion.objects.get().phase == "Succeeded"
