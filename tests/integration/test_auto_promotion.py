"""Auto-promotion end to end on the real ORM, tasks and promotion engine: a project whose
ProjectConfig lets Stages auto-promote, Freight arriving in its Warehouse, promotions that really
run (cheap compose-output steps, no git) and the periodic reconcile. After Kargo's Stage
controller: the candidate is promoted unless it is current, on its way, failed last time, or held.
"""

import io
import json
from datetime import timedelta

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from freight.actions import do_create_freight
from freight.models import Freight, Warehouse
from kargo.specs import StageSpec, WarehouseSpec, dump
from kargo_ui import remote_cli
from kargo_ui.celery import app
from projects.actions import do_create_project, do_set_membership
from projects.models import Event, Project, ProjectConfig
from projects.tokens import do_create_token
from stages import tasks
from stages.actions import do_abort, do_auto_promote, do_promote, do_set_auto_promotion
from stages.autopromotion import (
    CONTROLLER_ACTOR,
    HOLD_ANNOTATION,
    RESUME_ANNOTATION,
    auto_promotion_state,
    projects_to_reconcile,
)
from stages.models import Promotion, Stage

REPO = "file:///kargo-auto-promotion-tests/not-allowed/app.git"
STEPS = [{"uses": "compose-output", "config": {"stage": "${{ ctx.stage }}"}}]
# A step whose expression cannot be evaluated: the promotion ends Errored.
BROKEN_STEPS = [{"uses": "compose-output", "config": {"x": "${{ nothing.here }}"}}]


class no_worker:
    """Tasks are sent nowhere, as when the CLI acts while no server runs: only reconcile acts."""

    def __enter__(self):
        app.conf.task_always_eager = False

    def __exit__(self, *exc):
        app.conf.task_always_eager = True


def stage_spec(sources: dict, steps=STEPS) -> dict:
    raw = {
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": sources}],
        "promotionTemplate": {"spec": {"steps": steps}},
    }
    return dump(StageSpec.model_validate(raw))


@pytest.fixture
def project(transactional_db, data_dir) -> Project:
    """Project `ap`: Warehouse app (never discovered: its Freight is made by the tests), Stages
    test (direct) -> uat -> prod, and no ProjectConfig yet."""
    project = do_create_project("ap", actor="fixture")
    Warehouse.objects.create(
        project=project,
        name="app",
        spec=dump(WarehouseSpec.model_validate({"subscriptions": [{"git": {"repoURL": REPO}}]})),
        # Discovered a moment ago: reconcile leaves it alone.
        last_discovery_at=timezone.now(),
        status={"observedGeneration": 1},
    )
    for name, sources in (
        ("test", {"direct": True}),
        ("uat", {"stages": ["test"]}),
        ("prod", {"stages": ["uat"]}),
    ):
        Stage.objects.create(project=project, name=name, spec=stage_spec(sources))
    return project


def configure(project: Project, *policies: dict) -> None:
    """The project's ProjectConfig with these promotion policies, as `apply` stores it."""
    ProjectConfig.objects.update_or_create(
        project=project,
        defaults={"name": project.name, "spec": {"promotionPolicies": list(policies)}},
    )


AUTO_TEST = {"stageSelector": {"name": "test"}, "autoPromotionEnabled": True}

_made = iter(range(1, 1000))


def new_freight(project: Project) -> Freight:
    """New Freight in Warehouse app, newer than all before it (as discovery makes it)."""
    n = next(_made)
    freight, created = do_create_freight(
        project,
        "app",
        commits=[{"repoURL": REPO, "id": f"{n:040x}", "tag": f"v1.{n}.0"}],
        actor="controller:warehouse/app",
        discovered_at=timezone.now() + timedelta(seconds=n),
    )
    assert created
    return freight


def stage(name: str) -> Stage:
    return Stage.objects.get(name=name)


def current(name: str) -> str | None:
    history = stage(name).status.get("freightHistory") or []
    return history[0]["items"]["Warehouse/app"]["name"] if history else None


def promotions(name: str) -> list[Promotion]:
    return list(Promotion.objects.filter(stage__name=name).order_by("created_at", "id"))


def set_steps(name: str, steps) -> None:
    s = stage(name)
    sources = s.spec["requestedFreight"][0]["sources"]
    Stage.objects.filter(id=s.id).update(spec=stage_spec(sources, steps))


# ---------------------------------------------------------------------------- candidates


def test_new_freight_is_auto_promoted_into_an_enabled_stage(project):
    configure(project, AUTO_TEST)
    first = new_freight(project)  # its nudge runs the pass; the promotion runs inline
    assert current("test") == first.name
    (promotion,) = promotions("test")
    assert promotion.phase == "Succeeded", promotion.message
    assert promotion.actor == CONTROLLER_ACTOR
    assert not {HOLD_ANNOTATION, RESUME_ANNOTATION} & set(promotion.annotations)
    assert Event.objects.filter(
        reason="PromotionCreated", actor=CONTROLLER_ACTOR, involved=f"Promotion/{promotion.name}"
    ).exists()

    second = new_freight(project)
    assert current("test") == second.name
    assert stage("test").status["autoPromotionEnabled"] is True
    # uat has no policy: verified Freight waits there for a person.
    assert current("uat") is None and not promotions("uat")
    assert "autoPromotionEnabled" not in stage("uat").status


def test_reconcile_promotes_what_no_nudge_started(project):
    with no_worker():
        freight = new_freight(project)  # the nudge is lost: no server
        configure(project, AUTO_TEST)
    assert not promotions("test")
    tasks.reconcile()
    assert current("test") == freight.name
    assert [p.phase for p in promotions("test")] == ["Succeeded"]


def test_nothing_is_promoted_when_the_candidate_is_already_current(project):
    configure(project, AUTO_TEST)
    freight = new_freight(project)
    assert current("test") == freight.name
    tasks.reconcile()
    tasks.reconcile()
    assert len(promotions("test")) == 1


def test_a_candidate_whose_last_promotion_failed_is_never_retried_by_itself(project):
    configure(project, AUTO_TEST)
    good = new_freight(project)
    set_steps("test", BROKEN_STEPS)
    bad = new_freight(project)
    assert [p.phase for p in promotions("test")] == ["Succeeded", "Errored"]
    assert current("test") == good.name
    set_steps("test", STEPS)  # fixed, but the failed Freight still is not retried
    tasks.reconcile()
    tasks.reconcile()
    assert [p.freight_name for p in promotions("test")] == [good.name, bad.name]
    # A person may retry it; newer Freight is a new candidate and goes in by itself.
    newer = new_freight(project)
    assert current("test") == newer.name
    assert [p.phase for p in promotions("test")] == ["Succeeded", "Errored", "Succeeded"]


def test_freight_verified_upstream_flows_on_into_an_enabled_stage(project):
    configure(project, {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": True})
    freight = new_freight(project)
    # test takes it; its success verifies it there and nudges the pass, which takes it into
    # uat, and so on down the pipeline.
    assert [current(n) for n in ("test", "uat", "prod")] == [freight.name] * 3


def test_match_upstream_takes_what_is_in_the_upstream_stage_not_the_newest(project):
    Stage.objects.filter(name="uat").update(
        spec=stage_spec(
            {"stages": ["test"], "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}
        )
    )
    older, newer = new_freight(project), new_freight(project)
    test = stage("test")
    for freight in (newer, older):  # both verified in test; the older one is there now
        do_promote(test, freight, actor="email:ann@example.com")
    assert current("test") == older.name
    configure(project, {"stage": "uat", "autoPromotionEnabled": True})
    tasks.reconcile()
    assert current("uat") == older.name
    do_promote(test, newer, actor="email:ann@example.com")
    tasks.reconcile()
    assert current("uat") == newer.name
    assert [p.freight_name for p in promotions("uat")] == [older.name, newer.name]


# ---------------------------------------------------------------------------- holds


def test_promoting_older_freight_holds_auto_promotion_until_the_candidate_is_promoted(project):
    configure(project, AUTO_TEST)
    older, newest = new_freight(project), new_freight(project)
    assert current("test") == newest.name

    rollback = do_promote(stage("test"), older, actor="email:ann@example.com")
    rollback.refresh_from_db()
    assert rollback.annotations[HOLD_ANNOTATION] == "Warehouse/app"
    assert rollback.phase == "Succeeded"
    hold = stage("test").status["autoPromotionHolds"]["Warehouse/app"]
    assert hold["freightName"] == older.name
    assert hold["promotionName"] == rollback.name
    assert hold["actor"] == "email:ann@example.com"

    # Held: the candidate is not taken back in, nor is newer Freight.
    tasks.reconcile()
    assert current("test") == older.name
    newer = new_freight(project)
    tasks.reconcile()
    assert current("test") == older.name
    assert auto_promotion_state(stage("test")).holds["Warehouse/app"]["freightName"] == older.name

    # Promoting the candidate (as `kargo promote --warehouse` does) resumes it.
    resume = do_promote(stage("test"), newer, actor="email:ann@example.com")
    assert resume.annotations[RESUME_ANNOTATION] == "Warehouse/app"
    assert current("test") == newer.name
    assert "autoPromotionHolds" not in stage("test").status
    latest = new_freight(project)
    assert current("test") == latest.name
    assert promotions("test")[-1].actor == CONTROLLER_ACTOR


def test_an_open_promotion_of_older_freight_holds_already_and_an_aborted_one_does_not(project):
    configure(project, AUTO_TEST)
    older, _ = new_freight(project), new_freight(project)
    with no_worker():  # the person's promotion waits in the queue; newer Freight arrives
        pending = do_promote(stage("test"), older, actor="email:ann@example.com")
        newer = new_freight(project)
    assert pending.annotations[HOLD_ANNOTATION] == "Warehouse/app"
    assert do_auto_promote(project.id) == []
    effective = stage("test").status["effectiveAutoPromotionHolds"]
    assert effective["Warehouse/app"]["promotionName"] == pending.name
    assert not Promotion.objects.filter(freight_name=newer.name).exists()

    # Aborted, its intent goes with it: no hold, and the candidate goes in.
    do_abort(pending, "email:ann@example.com")
    assert Promotion.objects.get(id=pending.id).phase == "Aborted"
    tasks.reconcile()
    status = stage("test").status
    assert "autoPromotionHolds" not in status
    assert "effectiveAutoPromotionHolds" not in status
    assert current("test") == newer.name


def test_auto_promotions_never_set_holds_and_disabling_clears_them(project):
    configure(project, AUTO_TEST)
    older, _ = new_freight(project), new_freight(project)
    do_promote(stage("test"), older, actor="email:ann@example.com")
    assert "autoPromotionHolds" in stage("test").status
    configure(project)  # the policy goes away
    tasks.reconcile()
    status = stage("test").status
    assert "autoPromotionHolds" not in status
    assert "autoPromotionEnabled" not in status
    # Promoting older Freight while it is off holds nothing.
    configure(project, {"stage": "test", "autoPromotionEnabled": False})
    do_promote(stage("test"), older, actor="email:ann@example.com")
    assert HOLD_ANNOTATION not in promotions("test")[-1].annotations


# ---------------------------------------------------------------------------- cost


def test_the_reconcile_asks_once_when_no_project_has_policies(project):
    new_freight(project)
    with CaptureQueriesContext(connection) as ctx:
        assert projects_to_reconcile() == []
    assert len(ctx.captured_queries) == 1


def test_a_pass_reads_as_much_for_many_stages_as_for_few(project):
    def add_stages(*names):
        for name in names:
            Stage.objects.create(project=project, name=name, spec=stage_spec({"direct": True}))

    def reads() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert do_auto_promote(project.id) == []
        return len(ctx.captured_queries)

    configure(project, {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": True})
    add_stages("d1", "d2")
    new_freight(project)
    few = reads()
    add_stages(*(f"e{i}" for i in range(8)))
    new_freight(project)  # every Stage takes it
    assert all(current(s.name) for s in Stage.objects.all())
    assert reads() == few  # the project's Stages share their reads


def test_a_stage_whose_policy_went_away_is_marked_off(project):
    configure(project, AUTO_TEST)
    new_freight(project)
    assert stage("test").status["autoPromotionEnabled"] is True
    ProjectConfig.objects.all().delete()
    assert projects_to_reconcile() == [project.id]  # found by its status alone
    tasks.reconcile()
    assert "autoPromotionEnabled" not in stage("test").status
    assert projects_to_reconcile() == []


# ---------------------------------------------------------------------------- on / off


def test_turning_auto_promotion_on_and_off_writes_the_project_config(project):
    assert not ProjectConfig.objects.exists()
    freight = new_freight(project)
    config = do_set_auto_promotion(project, "test", True, "email:ann@example.com")
    assert config.name == "ap"
    assert config.spec == {"promotionPolicies": [{"stage": "test", "autoPromotionEnabled": True}]}
    # On at once: its status says so and its candidate is on its way.
    assert stage("test").status["autoPromotionEnabled"] is True
    assert current("test") == freight.name
    event = Event.objects.filter(reason="AutoPromotionEnabled").get()
    assert event.actor == "email:ann@example.com" and event.involved == "Stage/test"

    # `kargo get projectconfig` shows it as Kargo would.
    out = io.StringIO()
    call_command("kargo", "get", "projectconfig", "ap", "--project", "ap", "-o", "json", stdout=out)
    doc = json.loads(out.getvalue())
    assert doc["kind"] == "ProjectConfig"
    assert doc["spec"]["promotionPolicies"] == [{"stage": "test", "autoPromotionEnabled": True}]

    do_set_auto_promotion(project, "test", False, "email:ann@example.com")
    config.refresh_from_db()
    assert config.spec["promotionPolicies"] == [{"stage": "test", "autoPromotionEnabled": False}]
    assert config.generation == 2
    assert "autoPromotionEnabled" not in stage("test").status
    new_freight(project)
    assert current("test") == freight.name  # off: new Freight waits


def test_turning_it_on_puts_a_stage_policy_before_a_broader_one_that_decides(project):
    configure(project, {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": False})
    do_set_auto_promotion(project, "uat", True, "cli:ann")
    policies = ProjectConfig.objects.get().spec["promotionPolicies"]
    assert policies == [
        {"stage": "uat", "autoPromotionEnabled": True},
        {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": False},
    ]
    do_set_auto_promotion(project, "uat", False, "cli:ann")
    assert ProjectConfig.objects.get().spec["promotionPolicies"][0] == {
        "stage": "uat",
        "autoPromotionEnabled": False,
    }
    assert len(ProjectConfig.objects.get().spec["promotionPolicies"]) == 2
    with pytest.raises(ValueError, match="not found"):
        do_set_auto_promotion(project, "nope", True, "cli:ann")


# ---------------------------------------------------------------------------- who may


@pytest.fixture
def cast(project, django_user_model):
    people = {}
    for name, role in (("alice", "admin"), ("bob", "promoter"), ("carol", "viewer")):
        people[name] = django_user_model.objects.create_user(name, f"{name}@example.com", "pw")
        do_set_membership(project, people[name], role)
    return people


URL = "/api/v1/projects/ap/stages/test/auto-promotion"
HttpxClient = httpx.Client


def test_the_api_lets_admins_only_turn_it_on_or_off(project, cast):
    client = Client()
    for who in ("carol", "bob"):
        client.force_login(cast[who])
        response = client.post(URL, {"enabled": True}, content_type="application/json")
        assert response.status_code == 403, who
        assert "admin" in response.json()["error"]
        # Any member may look.
        assert client.get(URL).json() == {
            "stage": "test",
            "autoPromotionEnabled": False,
            "autoPromotionHolds": {},
        }
    assert not ProjectConfig.objects.exists()

    client.force_login(cast["alice"])
    response = client.post(URL, {"enabled": True}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["autoPromotionEnabled"] is True
    assert Event.objects.get(reason="AutoPromotionEnabled").actor == "email:alice@example.com"
    bad = client.post(URL, {"enabled": "yes"}, content_type="application/json")
    assert bad.status_code == 400
    missing = client.post(URL.replace("/test/", "/nope/"), {"enabled": True}, "application/json")
    assert missing.status_code == 404


def remote(monkeypatch, token: str, *args: str) -> tuple[int, str, str]:
    """`kargo-ui` in this process, its HTTP requests answered by this server's views."""
    django = Client()

    def answer(request: httpx.Request) -> httpx.Response:
        response = django.generic(
            request.method,
            request.url.raw_path.decode(),
            data=request.content,
            content_type=request.headers.get("content-type", ""),
            headers={"Authorization": request.headers["authorization"]},
        )
        return httpx.Response(
            response.status_code, headers=dict(response.items()), content=response.content
        )

    monkeypatch.setattr(
        remote_cli.httpx,
        "Client",
        lambda **kw: HttpxClient(**kw, transport=httpx.MockTransport(answer)),
    )
    monkeypatch.setenv("KARGO_TOKEN", token)
    monkeypatch.setenv("HOME", "/nonexistent")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = remote_cli.main(["--server", "http://127.0.0.1:9", *args])
    return code, out.getvalue(), err.getvalue()


def test_the_remote_cli_refuses_viewers_and_promoters_and_lets_admins(project, monkeypatch):
    argv = ("auto-promotion", "stage", "test", "--project", "ap")
    tokens = {
        role: do_create_token(project, role, role, "fixture")[1]
        for role in ("viewer", "promoter", "admin")
    }
    for role in ("viewer", "promoter"):
        code, out, err = remote(monkeypatch, tokens[role], *argv, "--on")
        assert code == 1, (role, out, err)
        assert "not allowed" in err and "admin" in err and "(HTTP 403)" in err
    assert not ProjectConfig.objects.exists()
    assert remote(monkeypatch, tokens["viewer"], *argv) == (
        0,
        "stage/test auto-promotion off\n",
        "",
    )

    code, out, err = remote(monkeypatch, tokens["admin"], *argv, "--on")
    assert (code, out) == (0, "stage/test auto-promotion on\n"), err
    assert ProjectConfig.objects.get().spec["promotionPolicies"][0]["stage"] == "test"
    assert Event.objects.get(reason="AutoPromotionEnabled").actor == "token:admin"


def test_the_server_cli_turns_it_on_and_off_and_shows_holds(project):
    older, _ = new_freight(project), new_freight(project)
    out = io.StringIO()
    call_command("kargo", "auto-promotion", "stage", "test", "--on", "--project", "ap", stdout=out)
    assert out.getvalue() == "stage/test auto-promotion on\n"
    promotion = do_promote(stage("test"), older, actor="email:ann@example.com")
    out = io.StringIO()
    call_command("kargo", "auto-promotion", "stage", "test", "--project", "ap", stdout=out)
    assert out.getvalue().splitlines() == [
        "stage/test auto-promotion on",
        f"  Warehouse/app held at Freight {older.name} by email:ann@example.com "
        f"(promotion {promotion.name})",
    ]
    out = io.StringIO()
    call_command("kargo", "auto-promotion", "stage", "test", "--off", "--project", "ap", stdout=out)
    assert out.getvalue() == "stage/test auto-promotion off\n"
    assert "autoPromotionHolds" not in stage("test").status
    with pytest.raises(CommandError, match="not found"):
        call_command("kargo", "auto-promotion", "stage", "nope", "--on", "--project", "ap")


def test_the_demo_auto_promotes_its_first_stage(transactional_db, data_dir):
    call_command("demo", "--no-registry", stdout=io.StringIO())
    demo = Project.objects.get(name="kargo-demo")
    assert ProjectConfig.objects.get(project=demo).spec["promotionPolicies"] == [
        {"stageSelector": {"name": "test"}, "autoPromotionEnabled": True}
    ]
    # Discovery made v1.2.0's Freight, which went into test by itself (for real: git, kustomize).
    newest = Freight.objects.filter(project=demo).first()
    assert newest.commits[0]["tag"] == "v1.2.0"
    (promotion,) = Promotion.objects.filter(project=demo)
    assert (promotion.stage.name, promotion.freight_name) == ("test", newest.name)
    assert promotion.phase == "Succeeded", promotion.message
    assert promotion.actor == CONTROLLER_ACTOR
    test = Stage.objects.get(project=demo, name="test")
    assert test.status["autoPromotionEnabled"] is True
    assert test.status["freightHistory"][0]["items"]["Warehouse/guestbook"]["name"] == newest.name
