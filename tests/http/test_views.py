"""The dashboard over HTTP: full pages, htmx partials, permissions and query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from freight.models import Freight
from stages import fragments
from stages.actions import do_finish, do_promote, do_start_next
from stages.models import Promotion, PromotionPhase, Stage


def login(client, user):
    client.force_login(user)
    return client


def test_pages_need_login(client, project):
    response = client.get("/project/kargo-demo/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_projects_list_shows_only_my_projects(client, users):
    from projects.actions import do_create_project

    do_create_project("other", "test")
    body = login(client, users["carol"]).get("/").content.decode()
    assert "kargo-demo" in body
    assert "other" not in body
    assert "1 warehouse · 3 stages" in body


def test_outsiders_get_404_not_a_hint(client, users, freight):
    client = login(client, users["dave"])
    for url in (
        "/project/kargo-demo/",
        "/project/kargo-demo/stage/test/",
        f"/project/kargo-demo/freight/{freight.name}/",
    ):
        assert client.get(url).status_code == 404
    assert (
        client.post("/project/kargo-demo/stage/test/promote", {"freight": freight.name}).status_code
        == 404
    )


def test_project_page_shows_pipeline_and_timeline(client, users, freight):
    body = login(client, users["carol"]).get("/project/kargo-demo/").content.decode()
    for stage in ("test", "uat", "prod"):
        assert f'data-stage="{stage}"' in body
    assert 'id="warehouse-' in body
    assert freight.alias in body
    assert "v1.2.0" in body
    assert 'ws-connect="/ws/project/kargo-demo/"' in body


def test_viewer_sees_no_promote_buttons_and_cannot_promote(client, users, freight):
    client = login(client, users["carol"])
    drawer = client.get(
        f"/project/kargo-demo/freight/{freight.name}/",
        headers={"HX-Request": "true", "HX-Target": "drawer"},
    )
    assert drawer.status_code == 200
    assert "promote-to-test" not in drawer.content.decode()
    assert "Approve" not in drawer.content.decode()
    for url, data in (
        ("/project/kargo-demo/stage/test/promote", {"freight": freight.name}),
        (f"/project/kargo-demo/freight/{freight.name}/approve", {"stage": "prod"}),
        ("/project/kargo-demo/stage/test/refresh", {}),
        ("/project/kargo-demo/warehouse/guestbook/refresh", {}),
    ):
        assert client.post(url, data).status_code == 403
        assert client.post(url, data, headers={"HX-Request": "true"}).status_code == 403
    assert not Promotion.objects.exists()
    freight.refresh_from_db()
    assert "approvedFor" not in freight.status


def test_bad_promote_requests_get_a_clear_error_not_a_500(client, users, freight):
    client = login(client, users["bob"])
    response = client.post(
        "/project/kargo-demo/stage/test/promote",
        {"freight": "nope"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 422
    assert response["HX-Reswap"] == "none"
    assert "Choose the Freight to promote" in response.content.decode()
    response = client.post(
        "/project/kargo-demo/stage/prod/promote",
        {"freight": freight.name},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 422
    assert "not yet verified in uat" in response.content.decode()
    response = client.post("/project/kargo-demo/stage/prod/promote", {"freight": freight.name})
    assert response.status_code == 302
    assert "not yet verified in uat" in client.get(response["Location"]).content.decode()
    assert (
        client.post("/project/kargo-demo/stage/nope/promote", {"freight": freight.name}).status_code
        == 404
    )
    assert client.get("/project/kargo-demo/promotion/nope/").status_code == 404
    assert client.get("/project/nope/").status_code == 404
    assert client.get("/project/kargo-demo/stage/test/promote").status_code == 405


def test_abort_a_pending_promotion(client, users, freight):
    from kargo_ui.celery import app

    app.conf.task_always_eager = False  # leave it queued
    try:
        promotion = do_promote(Stage.objects.get(name="test"), freight, actor="user:x")
    finally:
        app.conf.task_always_eager = True
    # Aborting needs admin, as Kargo reserves `patch` on promotions for kargo-admin.
    response = login(client, users["alice"]).post(
        f"/project/kargo-demo/promotion/{promotion.name}/abort"
    )
    assert response.status_code == 302
    promotion.refresh_from_db()
    assert promotion.phase == "Aborted"
    assert promotion.message == "Promotion terminated by email:alice@example.com"


def make_pipeline(project, n_stages: int, n_freight: int) -> None:
    """Grow the demo project with more stages and freight, for query-count checks."""
    from freight.actions import do_create_freight
    from stages.actions import do_init_stage_status

    base = Stage.objects.get(project=project, name="test")
    for i in range(n_stages):
        stage = Stage.objects.create(
            project=project,
            name=f"extra-{i}",
            spec={
                **base.spec,
                "requestedFreight": [
                    {
                        "origin": {"kind": "Warehouse", "name": "guestbook"},
                        "sources": {"stages": ["test"]},
                    }
                ],
            },
        )
        do_init_stage_status(stage)
    for i in range(n_freight):
        do_create_freight(
            project,
            "guestbook",
            commits=[{"repoURL": "file:///x", "id": f"{i:040x}"}],
            actor="test",
        )


def promote_without_steps(stage: Stage, freight: Freight) -> Promotion:
    """A Succeeded promotion, recorded through the engine's own actions (queue, start, finish)
    without running a step, so the pages show a Stage holding Freight as after a real run."""
    promotion = do_promote(stage, freight, actor="user:x")
    do_start_next(stage.id)
    promotion.refresh_from_db()
    do_finish(promotion, PromotionPhase.SUCCEEDED, "Recorded by the test; no step ran")
    return promotion


@pytest.mark.parametrize(
    "url",
    [
        "/project/kargo-demo/",
        "/project/kargo-demo/stage/test/",
        "/",
        "/project/kargo-demo/promotion/{promotion}/",
    ],
)
def test_page_query_counts_do_not_grow_with_stages_or_freight(client, users, freight, url):
    client = login(client, users["carol"])
    promotion = promote_without_steps(Stage.objects.get(name="test"), freight)
    url = url.format(promotion=promotion.name)

    def count() -> tuple[int, int]:
        """Queries with nothing rendered yet (cold: every card and the graph's layout are
        rendered, in batched queries) and again at once (warm: all from the render cache)."""
        counts = []
        fragments.CARDS.clear()
        fragments.LAYOUTS.clear()
        for _ in range(2):
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            counts.append(len(ctx.captured_queries))
        return tuple(counts)

    small = count()
    assert small[1] >= 3  # the counter really counts: session, user and the page's own reads
    make_pipeline(freight.project, n_stages=12, n_freight=40)
    assert count() == small
    cold, warm = small
    assert cold <= warm + 4
    if url == "/project/kargo-demo/":
        assert warm <= 12


def test_a_pending_promotion_says_why_it_waits(client, users, freight):
    from kargo_ui.celery import app

    stage = Stage.objects.get(name="test")
    app.conf.task_always_eager = False
    try:
        first = do_promote(stage, freight, actor="user:x")
        second = do_promote(stage, freight, actor="user:x")
        do_start_next(stage.id)
    finally:
        app.conf.task_always_eager = True
    client = login(client, users["carol"])
    body = client.get(f"/project/kargo-demo/promotion/{second.name}/").content.decode()
    assert f"Queued behind running promotion {first.name}" in body
    body = client.get(f"/project/kargo-demo/promotion/{first.name}/").content.decode()
    assert "pending-reason" not in body


def test_the_timeline_pages_by_freight_without_gaps(client, users, freight):
    make_pipeline(freight.project, n_stages=0, n_freight=130)  # 133 in all
    from django.utils import timezone

    # Ties on discovered_at across page boundaries are the hard case for paging.
    Freight.objects.filter(name__startswith="a").update(discovered_at=timezone.now())
    client = login(client, users["carol"])
    seen, url = [], "/project/kargo-demo/"
    for _ in range(5):
        response = client.get(url)
        seen += [f.name for f, _ in response.context["timeline"]]
        if not response.context["freight_more"]:
            break
        url = f"/project/kargo-demo/?before={response.context['oldest']}"
    assert len(seen) == len(set(seen)) == Freight.objects.count() == 133
    assert 'id="timeline-older"' in response.content.decode()
    assert client.get("/project/kargo-demo/?before=2024-13-45T00:00:00").status_code == 200
