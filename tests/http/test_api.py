"""The JSON API: same actions and the same permission checks as the pages."""

import json

from stages.models import Promotion


def post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_api_needs_authentication(client, project):
    response = client.get("/api/v1/projects/kargo-demo/stages")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


def test_list_stages_in_kargo_shape(client, users):
    client.force_login(users["carol"])
    items = client.get("/api/v1/projects/kargo-demo/stages").json()["items"]
    assert {i["metadata"]["name"] for i in items} == {"test", "uat", "prod"}
    assert items[0]["apiVersion"] == "kargo.akuity.io/v1alpha1"


def test_viewers_and_outsiders_cannot_act(client, users, freight):
    for who, status in (("carol", 403), ("dave", 404)):
        client.force_login(users[who])
        for url, body in (
            ("/api/v1/projects/kargo-demo/stages/test/promotions", {"freight": freight.name}),
            (f"/api/v1/projects/kargo-demo/freight/{freight.name}/approve?stage=prod", {}),
            ("/api/v1/projects/kargo-demo/warehouses/guestbook/refresh", {}),
            ("/api/v1/projects/kargo-demo/stages/test/refresh", {}),
            ("/api/v1/projects/kargo-demo/stages/test/verification", {}),
        ):
            response = post(client, url, body)
            assert response.status_code == status, (who, url)
            assert "error" in response.json()
    assert not Promotion.objects.exists()


def test_bad_requests_get_clear_400s(client, users, freight):
    client.force_login(users["bob"])
    url = "/api/v1/projects/kargo-demo/stages/test/promotions"
    assert post(client, url, {}).json() == {
        "error": "give exactly one of freight, freightAlias or origin"
    }
    assert client.post(url, "{not json", content_type="application/json").status_code == 400
    response = post(
        client, "/api/v1/projects/kargo-demo/stages/prod/promotions", {"freight": freight.name}
    )
    assert response.status_code == 400
    assert "not yet verified in uat" in response.json()["error"]
    assert post(client, url, {"freight": "nope"}).status_code == 404
    assert post(client, url, {"origin": "Bucket/x"}).status_code == 400
    assert client.get("/api/v1/projects/kargo-demo/freight?limit=abc").status_code == 400


def test_approve_and_refresh(client, users, freight):
    client.force_login(users["bob"])
    response = post(
        client, f"/api/v1/projects/kargo-demo/freight/{freight.alias}/approve?stage=prod"
    )
    assert response.status_code == 200
    freight.refresh_from_db()
    assert "prod" in freight.status["approvedFor"]
    assert (
        post(client, "/api/v1/projects/kargo-demo/warehouses/guestbook/refresh").status_code == 202
    )
