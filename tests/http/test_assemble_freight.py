"""Freight put together by hand (issue 9, item 6; Kargo's "create Freight" view): a promoter
picks one discovered artifact per subscription of a Warehouse, in the drawer or with a plain
form POST; the same artifacts make the same Freight; bad picks get a clear message."""

import hashlib
import io
import json

import pytest
from django.core.management import CommandError, call_command

from freight.models import Freight, Warehouse
from kargo.freight_ids import freight_id
from stages.models import AnalysisRun

from .conftest import APP_REPO

URL = "/project/kargo-demo/warehouse/guestbook/freight/new"
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "drawer"}


def commit(tag: str) -> dict:
    return {
        "id": hashlib.sha1(f"manual-{tag}".encode()).hexdigest(),
        "tag": tag,
        "subject": f"Release {tag}",
        "author": "Ann <ann@example.com>",
    }


@pytest.fixture
def manual(project) -> Warehouse:
    """guestbook as a Manual Warehouse whose last discovery found three tags."""
    warehouse = Warehouse.objects.get(project=project, name="guestbook")
    warehouse.spec = {**warehouse.spec, "freightCreationPolicy": "Manual"}
    warehouse.status = {
        "discoveredArtifacts": {
            "discoveredAt": "2026-12-01T10:00:00Z",
            "git": [
                {"repoURL": APP_REPO, "commits": [commit(t) for t in ("v2.1.0", "v2.0.0")]},
            ],
        }
    }
    warehouse.save()
    return warehouse


def test_a_promoter_sees_the_discovered_artifacts_and_creates_freight(client, users, manual):
    client.force_login(users["bob"])
    page = client.get(URL, **HTMX)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="sub-0"' in html and "v2.1.0" in html and "v2.0.0" in html
    chosen = commit("v2.0.0")
    response = client.post(URL, {"sub-0": chosen["id"], "alias": "by-hand"}, **HTMX)
    assert response.status_code == 200, response.content.decode()[:300]
    expected = {
        "repoURL": APP_REPO,
        "id": chosen["id"],
        "tag": "v2.0.0",
        "message": "Release v2.0.0",
        "author": "Ann <ann@example.com>",
    }
    freight = Freight.objects.get(alias="by-hand")
    assert freight.commits == [expected]
    assert freight.name == freight_id("guestbook", [expected], [], [])
    assert f'id="freight-drawer-{freight.id}"' in response.content.decode()
    # The same artifacts again: the same Freight, said so.
    again = client.post(URL, {"sub-0": chosen["id"]}, **HTMX)
    assert "Freight by-hand has exactly these artifacts." in again.content.decode()
    assert Freight.objects.filter(alias="by-hand").count() == 1


def test_the_warehouse_card_offers_new_freight_to_promoters_only(client, users, manual):
    client.force_login(users["bob"])
    page = client.get("/project/kargo-demo/").content.decode()
    assert 'data-testid="new-freight"' in page and ">manual</span>" in page
    client.force_login(users["carol"])
    page = client.get("/project/kargo-demo/").content.decode()
    assert 'data-testid="new-freight"' not in page


@pytest.mark.parametrize(
    "form,message",
    [
        ({}, "choose an artifact of " + APP_REPO),
        ({"sub-0": "f" * 40}, "is not among the discovered artifacts of " + APP_REPO),
        ({"sub-0": commit("v2.0.0")["id"], "sub-7": "x"}, "has no subscription number 7"),
        ({"sub-0": commit("v2.0.0")["id"], "alias": "Bad Alias!"}, "an alias is lowercase"),
    ],
)
def test_bad_picks_get_a_clear_message_and_create_nothing(client, users, manual, form, message):
    client.force_login(users["bob"])
    before = Freight.objects.count()
    response = client.post(URL, form, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert Freight.objects.count() == before


def test_viewers_and_outsiders_are_refused(client, users, manual):
    client.force_login(users["carol"])
    assert client.get(URL, **HTMX).status_code == 403
    assert client.post(URL, {"sub-0": commit("v2.0.0")["id"]}).status_code == 403
    client.force_login(users["dave"])
    assert client.get(URL).status_code == 404
    assert not Freight.objects.filter(commits__0__id=commit("v2.0.0")["id"]).exists()


def test_nothing_discovered_yet_says_what_to_do(client, users, project):
    client.force_login(users["bob"])
    html = client.get(URL, **HTMX).content.decode()
    assert "Nothing discovered yet: press Refresh" in html


def test_the_full_page_form_works_without_javascript(client, users, manual):
    client.force_login(users["bob"])
    page = client.get(URL)
    assert page.status_code == 200 and 'id="assemble-drawer-' in page.content.decode()
    response = client.post(URL, {"sub-0": commit("v2.1.0")["id"]})
    assert response.status_code == 302
    freight = Freight.objects.get(commits__0__tag="v2.1.0")
    assert response["Location"] == f"/project/kargo-demo/freight/{freight.name}/"


def test_an_analysisrun_opens_as_a_full_page_too(client, users, project):
    """A run's drawer link works without JavaScript (the page with the drawer open)."""
    AnalysisRun.objects.create(
        project=project,
        name="test.run1",
        spec={"metrics": [{"name": "ok", "provider": {"web": {"url": "http://x"}}}]},
        status={"phase": "Running", "metricResults": []},
    )
    client.force_login(users["carol"])
    html = client.get("/project/kargo-demo/analysisrun/test.run1/").content.decode()
    assert 'id="analysisrun-drawer-' in html and "No measurements yet" in html


API = "/api/v1/projects/kargo-demo/warehouses/guestbook/freight"


def api_post(client, body):
    return client.post(API, json.dumps(body), content_type="application/json")


def test_the_api_takes_artifacts_by_subscription_and_tag(client, users, manual):
    client.force_login(users["bob"])
    token = client.get("/project/kargo-demo/").cookies["csrftoken"].value
    client.defaults["HTTP_X_CSRFTOKEN"] = token
    response = api_post(client, {"artifacts": {APP_REPO: "v2.1.0"}, "alias": "from-api"})
    assert response.status_code == 201, response.content
    manifest = response.json()
    assert manifest["alias"] == "from-api"
    assert manifest["commits"][0]["id"] == commit("v2.1.0")["id"]
    # An abbreviated id names the same artifacts: the same Freight, 200.
    again = api_post(client, {"artifacts": {APP_REPO: commit("v2.1.0")["id"][:8]}})
    assert (
        again.status_code == 200
        and again.json()["metadata"]["name"] == manifest["metadata"]["name"]
    )
    wrong = api_post(client, {"artifacts": {"https://elsewhere.example/x.git": "v1"}})
    assert wrong.status_code == 400
    assert "no subscription 'https://elsewhere.example/x.git'" in wrong.json()["error"]
    assert api_post(client, {"artifacts": ["v1"]}).status_code == 400
    client.force_login(users["carol"])
    assert api_post(client, {"artifacts": {APP_REPO: "v2.0.0"}}).status_code == 403


def test_kargo_create_freight_on_the_server(manual):
    out = io.StringIO()
    call_command(
        "kargo", "create", "freight", "cli-made", "--project", "kargo-demo",
        "--warehouse", "guestbook", "--artifact", f"{APP_REPO}=v2.0.0", stdout=out,
    )  # fmt: skip
    freight = Freight.objects.get(alias="cli-made")
    assert out.getvalue().strip() == f"freight/{freight.name} (cli-made) created"
    assert freight.commits[0]["tag"] == "v2.0.0"
    with pytest.raises(CommandError, match="choose an artifact of"):
        call_command(
            "kargo", "create", "freight", "-", "--project", "kargo-demo", "--warehouse",
            "guestbook", stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="give SUBSCRIPTION=ARTIFACT"):
        call_command(
            "kargo", "create", "freight", "-", "--project", "kargo-demo", "--warehouse",
            "guestbook", "--artifact", "v2.0.0", stdout=io.StringIO(),
        )  # fmt: skip
