"""The audit trail: every change records its actor, surface (browser, api, cli, controller) and
source address, and before/after where a spec, alias or role changes; the project's admins read it
on /project/<name>/audit/, filter it and export it as CSV or JSON Lines."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from celery import shared_task
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from kargo_ui import manifests
from projects.actions import record_event
from projects.audit import audit_context
from projects.models import Event, Project, Surface
from projects.queries import AuditFilter, audit_events
from projects.tokens import do_create_token
from stages.actions import do_finish, do_promote, do_start_next
from stages.models import PromotionPhase, Stage

URL = "/project/kargo-demo/audit/"
# What the filter form and the paging links send.
HTMX = {"HX-Request": "true", "HX-Target": "audit-table"}
CLIENT_IP = "203.0.113.7"
PROXY_IP = "10.0.0.2"


def browser(user=None, address: str = CLIENT_IP) -> Client:
    client = Client(REMOTE_ADDR=address)
    if user is not None:
        client.force_login(user)
    return client


def kargo(*args: str) -> str:
    out = io.StringIO()
    call_command("kargo", "--actor", "cli:ops", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def newest(reason: str) -> Event:
    return Event.objects.filter(reason=reason).latest("id")


def add_events(project: Project, n: int, **fields) -> None:
    Event.objects.bulk_create(
        Event(
            project=project,
            reason=fields.get("reason", "FreightApproved"),
            actor=fields.get("actor", "user:someone"),
            message=fields.get("message", f"bulk event {i}"),
            surface=fields.get("surface", Surface.CONTROLLER),
        )
        for i in range(n)
    )


# ---------------------------------------------------------------- what is recorded


def test_a_browser_post_records_the_browser_and_the_client_address(users, freight):
    response = browser(users["bob"]).post(
        "/project/kargo-demo/stage/test/promote",
        {"freight": freight.name},
        # Anyone can write this header: without a setting that trusts a proxy, it is ignored.
        HTTP_X_FORWARDED_FOR="198.51.100.66",
    )
    assert response.status_code == 302
    event = newest("PromotionCreated")
    assert (event.actor, event.surface, event.source_address) == (
        "email:bob@example.com",
        "browser",
        CLIENT_IP,
    )


def test_a_trusted_proxy_s_forwarded_for_gives_the_client_it_saw(settings, users, freight):
    settings.AUDIT_TRUST_X_FORWARDED_FOR = True
    browser(users["bob"], address=PROXY_IP).post(
        "/project/kargo-demo/stage/test/promote",
        {"freight": freight.name},
        # The client's own claim first, then what our proxy appended: only the last counts.
        HTTP_X_FORWARDED_FOR=f"192.0.2.1, {CLIENT_IP}",
    )
    assert newest("PromotionCreated").source_address == CLIENT_IP


def test_an_api_call_with_a_token_records_the_api_and_the_token(project, freight):
    _, secret = do_create_token(project, "ci", "promoter", "fixture")
    response = Client(REMOTE_ADDR="2001:db8::7").post(
        "/api/v1/projects/kargo-demo/stages/test/promotions",
        json.dumps({"freight": freight.name}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 201, response.content
    event = newest("PromotionCreated")
    assert (event.actor, event.surface, event.source_address) == ("token:ci", "api", "2001:db8::7")


def test_a_cli_call_records_the_cli_and_no_address(project, freight):
    kargo("approve", "--project", "kargo-demo", "--freight", freight.name, "--stage", "uat")
    event = newest("FreightApproved")
    assert (event.actor, event.surface, event.source_address) == ("cli:ops", "cli", None)


def test_grant_and_revoke_record_the_role_before_and_after(project, django_user_model):
    django_user_model.objects.create_user("erin")
    kargo("grant", "--project", "kargo-demo", "--user", "erin", "--role", "viewer")
    kargo("grant", "--project", "kargo-demo", "--user", "erin", "--role", "admin")
    kargo("revoke", "--project", "kargo-demo", "--user", "erin")
    changes = [
        (e.reason, e.before, e.after, e.surface, e.involved)
        for e in Event.objects.filter(reason__startswith="Role").order_by("id")
    ]
    assert changes == [
        ("RoleGranted", {"role": None}, {"role": "viewer"}, "cli", "User/erin"),
        ("RoleGranted", {"role": "viewer"}, {"role": "admin"}, "cli", "User/erin"),
        ("RoleRevoked", {"role": "admin"}, {"role": None}, "cli", "User/erin"),
    ]


def test_a_controller_action_records_the_controller(freight):
    stage = Stage.objects.get(name="test")
    promotion = do_promote(stage, freight, actor="user:alice")
    do_start_next(stage.id)
    promotion.refresh_from_db()
    do_finish(promotion, PromotionPhase.SUCCEEDED, "done")
    event = newest("PromotionSucceeded")
    assert (event.surface, event.source_address) == ("controller", None)


@shared_task
def record_from_a_task(project_id: int) -> None:
    record_event(Project.objects.get(id=project_id), "TaskProbe", "controller:test", "from a task")


def test_a_task_is_the_controller_even_when_a_request_runs_it_inline(project):
    # Celery runs tasks inline in tests (task_always_eager), inside whatever started them.
    with audit_context(Surface.BROWSER, CLIENT_IP, "user:alice"):
        record_from_a_task.delay(project.id)
        record_event(project, "RequestProbe", "user:alice", "from the request")
    assert (newest("TaskProbe").surface, newest("TaskProbe").source_address) == ("controller", None)
    assert (newest("RequestProbe").surface, newest("RequestProbe").source_address) == (
        "browser",
        CLIENT_IP,
    )


def applied(tmp_path, docs: list[dict]) -> str:
    path = tmp_path / "apply.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return kargo("apply", "-f", str(path))


def exported(kind: str, name: str) -> dict:
    (doc,) = manifests.export(kind, "kargo-demo", name)
    doc.pop("status", None)
    return doc


def test_a_spec_change_by_apply_records_before_and_after(project, tmp_path):
    doc = exported("Warehouse", "guestbook")
    doc["spec"]["interval"] = "10m0s"
    assert "warehouse/guestbook configured" in applied(tmp_path, [doc])
    event = newest("WarehouseUpdated")
    assert event.surface == "cli" and event.actor == "cli:ops"
    assert event.involved == "Warehouse/guestbook"
    assert event.before["spec"]["interval"] == "30s"
    assert event.after["spec"]["interval"] == "10m0s"
    # Only what changed is kept.
    assert set(event.before) == set(event.after) == {"spec"}
    # The same file again changes nothing and records nothing.
    count = Event.objects.count()
    assert "unchanged" in applied(tmp_path, [doc])
    assert Event.objects.count() == count


def test_an_alias_change_by_apply_records_before_and_after(freight, tmp_path):
    doc = exported("Freight", freight.name)
    doc["alias"] = "renamed-by-apply"
    assert "configured" in applied(tmp_path, [doc])
    event = newest("FreightAliasUpdated")
    assert event.before == {"alias": freight.alias}
    assert event.after == {"alias": "renamed-by-apply"}
    assert event.surface == "cli"


def test_apply_over_the_api_records_created_resources_and_masks_credentials(project):
    _, secret = do_create_token(project, "deployer", "admin", "fixture")
    manifest = {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "private", "namespace": "kargo-demo"},
        "spec": {
            "subscriptions": [
                {"git": {"repoURL": "https://bot:s3cret@example.com/app.git"}},
            ]
        },
    }
    response = Client(REMOTE_ADDR=CLIENT_IP).post(
        "/api/v1/projects/kargo-demo/manifests",
        yaml.safe_dump(manifest),
        content_type="application/yaml",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.content
    event = newest("WarehouseCreated")
    assert (event.actor, event.surface, event.source_address) == (
        "token:deployer",
        "api",
        CLIENT_IP,
    )
    assert event.before is None
    repo = event.after["spec"]["subscriptions"][0]["git"]["repoURL"]
    assert "s3cret" not in repo and repo.startswith("https://***@")


def test_deleting_a_resource_records_what_it_was(project):
    kargo("delete", "stage", "prod", "--project", "kargo-demo")
    kargo("delete", "warehouse", "guestbook", "--project", "kargo-demo")
    event = newest("WarehouseDeleted")
    assert event.surface == "cli" and event.before["spec"]["interval"] == "30s"


# ---------------------------------------------------------------- who may read it


@pytest.mark.parametrize(
    "who,status", [("alice", 200), ("bob", 403), ("carol", 403), ("dave", 404)]
)
def test_only_admins_read_the_audit_trail(users, who, status):
    client = browser(users[who])
    assert client.get(URL).status_code == status
    assert client.get(URL, headers=HTMX).status_code == status
    assert client.get(URL + "?format=csv").status_code == status


def test_anonymous_visitors_are_sent_to_log_in(project):
    response = Client().get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_project_page_links_to_it_for_admins_only(users):
    assert URL in browser(users["alice"]).get("/project/kargo-demo/").content.decode()
    for who in ("bob", "carol"):
        assert URL not in browser(users[who]).get("/project/kargo-demo/").content.decode()


# ---------------------------------------------------------------- the page


def rows(response) -> list[str]:
    """The reasons of the events a page shows, top to bottom."""
    html = response.content.decode()
    return [
        part.split(">", 1)[1].split("<", 1)[0] for part in html.split('class="event-reason')[1:]
    ]


def test_the_page_lists_events_newest_first_with_their_details(users, freight):
    browser(users["bob"]).post("/project/kargo-demo/stage/test/promote", {"freight": freight.name})
    response = browser(users["alice"]).get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert rows(response)[0] == "PromotionCreated"
    assert rows(response)[-1] == "ProjectCreated"
    assert "email:bob@example.com" in html and CLIENT_IP in html and "surface-browser" in html
    assert 'id="audit-table"' in html and "<form" in html


def test_a_change_shows_what_it_changed_at_a_glance(users, project, tmp_path):
    doc = exported("Warehouse", "guestbook")
    doc["spec"]["interval"] = "10m0s"
    doc["metadata"]["labels"] = {"team": "payments"}
    applied(tmp_path, [doc])
    html = browser(users["alice"]).get(URL + "?reason=WarehouseUpdated").content.decode()
    assert "<code>spec.interval</code>" in html
    assert '<span class="audit-old">30s</span> → <span class="audit-new">10m0s</span>' in html
    assert "<code>labels.team</code>" in html and '<span class="audit-new">payments</span>' in html


def test_an_htmx_filter_change_swaps_only_the_table(users, freight):
    response = browser(users["alice"]).get(URL + "?reason=FreightCreated", headers=HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="audit-table"')
    assert "<form" not in html
    assert set(rows(response)) == {"FreightCreated"} and len(rows(response)) == 3


def test_an_htmx_history_restore_gets_the_whole_page(users, project):
    response = browser(users["alice"]).get(
        URL + "?surface=cli",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<form" in response.content.decode() and "<html" in response.content.decode()


def test_filters_narrow_the_events(users, project):
    client = browser(users["alice"])
    add_events(project, 3, reason="PromotionSucceeded", actor="user:zed", surface=Surface.API)
    add_events(project, 2, reason="PromotionFailed", actor="user:yan", message="disk full")
    old = Event.objects.filter(reason="PromotionFailed").first()
    Event.objects.filter(id=old.id).update(created_at=datetime(2020, 1, 2, 12, tzinfo=UTC))

    def reasons(query: str) -> list[str]:
        response = client.get(URL + query)
        assert response.status_code == 200
        return rows(response)

    assert reasons("?reason=PromotionSucceeded") == ["PromotionSucceeded"] * 3
    assert reasons("?actor=user:yan") == ["PromotionFailed"] * 2
    assert reasons("?surface=api") == ["PromotionSucceeded"] * 3
    assert reasons("?q=DISK") == ["PromotionFailed"] * 2
    assert reasons("?q=Freight/") == ["FreightCreated"] * 3  # the involved object counts too
    assert reasons("?until=2020-01-02") == ["PromotionFailed"]  # the whole day
    assert reasons("?until=2020-01-02T11:59") == []
    assert "PromotionFailed" in reasons("?since=2020-01-02T12:00&until=2020-01-03")
    assert len(reasons("?since=2021-01-01&actor=user:yan")) == 1
    assert reasons("?reason=PromotionSucceeded&surface=browser") == []
    assert "No events match these filters" in client.get(URL + "?reason=Nope").content.decode()


def test_bad_filters_say_what_is_wrong_instead_of_failing(users):
    client = browser(users["alice"])
    response = client.get(URL + "?since=yesterday&surface=fax")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Fix the filters" in html and "since" in html and "surface" in html
    assert rows(response) == []
    assert client.get(URL + "?since=yesterday&format=csv").status_code == 400
    assert client.get(URL + "?format=xml").status_code == 400


def test_an_empty_trail_says_so(users, project):
    Event.objects.all().delete()
    html = browser(users["alice"]).get(URL).content.decode()
    assert "Nothing has been recorded in this project yet" in html
    assert "export-csv" in html  # an empty export is still a valid file


def test_paging_walks_every_event_once_even_when_times_tie(users, project):
    client = browser(users["alice"])
    add_events(project, 120)
    # Half of them at one instant: the cursor orders ties by id.
    tied = Event.objects.filter(project=project).order_by("id").values_list("id", flat=True)[:60]
    Event.objects.filter(id__in=list(tied)).update(created_at=datetime(2030, 1, 1, tzinfo=UTC))
    expected = list(
        Event.objects.filter(project=project)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )
    seen, query, pages = [], "", 0
    while True:
        response = client.get(URL + query)
        events, more = response.context["events"], response.context["more"]
        seen += [e.id for e in events]
        pages += 1
        if more is None:
            break
        assert len(events) == 50
        query = f"?before={more.id}"
    assert seen == expected and pages == 3


# ---------------------------------------------------------------- export


def export(client, query: str) -> tuple[object, str]:
    response = client.get(URL + query)
    assert response.status_code == 200
    assert response.streaming
    return response, b"".join(response.streaming_content).decode()


def test_csv_export_holds_the_filtered_set(users, project, tmp_path):
    client = browser(users["alice"])
    doc = exported("Warehouse", "guestbook")
    doc["spec"]["interval"] = "1m0s"
    applied(tmp_path, [doc])
    add_events(project, 70, reason="FreightApproved", message='=HYPERLINK("http://x")')
    response, body = export(client, "?reason=FreightApproved&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="kargo-demo-audit-' in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(body)))
    assert len(table) == 70  # every match, not one page
    assert {r["reason"] for r in table} == {"FreightApproved"}
    # A spreadsheet must not run what someone put in a message.
    assert table[0]["message"].startswith("'=HYPERLINK")
    _, body = export(client, "?reason=WarehouseUpdated&format=csv")
    (row,) = csv.DictReader(io.StringIO(body))
    assert row["actor"] == "cli:ops" and row["surface"] == "cli" and row["sourceAddress"] == ""
    assert json.loads(row["before"])["spec"]["interval"] == "30s"
    assert json.loads(row["after"])["spec"]["interval"] == "1m0s"
    assert row["time"].endswith("Z")


def test_jsonl_export_is_one_event_a_line(users, freight):
    browser(users["bob"]).post("/project/kargo-demo/stage/test/promote", {"freight": freight.name})
    response, body = export(browser(users["alice"]), "?format=jsonl")
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == Event.objects.filter(project=freight.project).count()
    first = lines[0]
    assert first["reason"] == "PromotionCreated"
    assert first["actor"] == "email:bob@example.com"
    assert (first["surface"], first["sourceAddress"]) == ("browser", CLIENT_IP)
    assert set(first) == {
        "time",
        "reason",
        "actor",
        "surface",
        "sourceAddress",
        "involved",
        "message",
        "before",
        "after",
    }
    # Newest first, as on the page.
    times = [line["time"] for line in lines]
    assert times == sorted(times, reverse=True)
    _, body = export(browser(users["alice"]), "?format=jsonl&actor=nobody")
    assert body == ""


# ---------------------------------------------------------------- query counts


@pytest.mark.parametrize(
    "query,htmx",
    [
        ("", False),
        ("", True),
        ("?reason=FreightApproved&surface=controller&q=bulk", False),
        ("?actor=user:someone&since=2020-01-01&until=2099-12-31", True),
        ("?before={cursor}", False),
        ("?format=csv", False),
        ("?format=jsonl&reason=FreightApproved", False),
    ],
)
def test_query_counts_do_not_grow_with_the_events(users, project, query, htmx):
    client = browser(users["alice"])
    headers = HTMX if htmx else {}

    def count() -> int:
        cursor = Event.objects.filter(project=project).order_by("-created_at", "-id")[5].id
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(URL + query.format(cursor=cursor), headers=headers)
            assert response.status_code == 200
            if response.streaming:
                b"".join(response.streaming_content)
        return len(ctx.captured_queries)

    add_events(project, 10 - Event.objects.count())
    small = count()
    assert small >= 3  # session, user and the page's own reads
    add_events(project, 1990)
    assert Event.objects.filter(project=project).count() >= 2000
    assert count() == small


def test_a_page_reads_one_page_of_events(users, project):
    """However many events there are, the page fetches 51 rows (50 and one to know of more)."""
    add_events(project, 500)
    with CaptureQueriesContext(connection) as ctx:
        browser(users["alice"]).get(URL)
    event_reads = [q["sql"] for q in ctx.captured_queries if 'FROM "projects_event"' in q["sql"]]
    page_reads = [sql for sql in event_reads if "LIMIT 51" in sql]
    assert len(page_reads) == 1
    assert "COUNT(" not in " ".join(event_reads) and "OFFSET" not in " ".join(event_reads)


@pytest.mark.parametrize(
    "audit_filter,index",
    [
        (AuditFilter(), "event_project_newest"),
        (AuditFilter(reason="PromotionFailed"), "event_project_reason_newest"),
        (AuditFilter(actor="user:someone"), "event_project_actor_newest"),
        (AuditFilter(surface="api"), "event_project_surface_newest"),
        (AuditFilter(text="disk"), "event_project_newest"),
    ],
)
def test_each_filter_reads_an_index_in_page_order(project, audit_filter, index):
    if connection.vendor != "sqlite":
        pytest.skip("the plan is SQLite's")
    add_events(project, 300)
    plan = audit_events(project, audit_filter)[:51].explain()
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # nothing sorted: the index gives the order


def test_since_until_dates_are_days(users, project):
    add_events(project, 1, reason="Edge")
    Event.objects.filter(reason="Edge").update(
        created_at=datetime(2024, 5, 17, 23, 59, 59, tzinfo=UTC)
    )
    client = browser(users["alice"])
    assert rows(client.get(URL + "?reason=Edge&since=2024-05-17&until=2024-05-17")) == ["Edge"]
    assert rows(client.get(URL + "?reason=Edge&since=2024-05-18")) == []
    day_after = (datetime(2024, 5, 17) + timedelta(days=1)).date().isoformat()
    assert rows(client.get(URL + f"?reason=Edge&until={day_after}")) == ["Edge"]
