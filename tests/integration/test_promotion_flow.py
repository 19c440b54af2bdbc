"""The slice end to end without a browser: the demo's real repositories, discovery, and a
promotion through test -> uat -> prod that lands rendered manifests on the stage branches."""

import re

import pytest
from django.core.management import call_command

from freight.models import Freight, Warehouse
from stages.actions import PromotionError, do_promote
from stages.models import Promotion, Stage
from stages.queries import availability, stage_phase
from tests.conftest import git_log_subject, git_show


def newest(project) -> Freight:
    return Freight.objects.filter(project=project).first()


def test_warehouse_discovers_the_newest_semver_tag(demo):
    freight = newest(demo)
    assert freight is not None
    assert freight.commits[0]["tag"] == "v1.2.0"
    assert freight.origin_name == "guestbook"
    assert freight.alias and "-" in freight.alias
    warehouse = Warehouse.objects.get(project=demo, name="guestbook")
    assert warehouse.status["lastFreightID"] == freight.name
    tags = [c["tag"] for c in warehouse.status["discoveredArtifacts"]["git"][0]["commits"]]
    assert tags == ["v1.2.0", "v1.1.0", "v1.0.0"]


def test_freight_promotes_through_all_three_stages(demo, data_dir):
    freight = newest(demo)
    gitops = data_dir / "demo" / "repos" / "guestbook-gitops.git"
    uat = Stage.objects.get(project=demo, name="uat")
    assert availability(uat, freight)[0] is False

    for name in ("test", "uat", "prod"):
        stage = Stage.objects.get(project=demo, name=name)
        promotion = do_promote(stage, freight, actor="user:tester")
        promotion.refresh_from_db()
        assert promotion.phase == "Succeeded", promotion.message
        steps = promotion.status["stepExecutionMetadata"]
        assert [s["status"] for s in steps] == ["Succeeded"] * 6
        assert all(s["startedAt"] and s["finishedAt"] for s in steps)
        # The evaluated config is recorded, with expressions resolved.
        assert steps[2]["config"]["images"][0]["tag"] == "v1.2.0"
        rendered = git_show(gitops, f"stage/{name}", "manifests.yaml")
        assert "image: demo/guestbook:v1.2.0" in rendered
        assert f"namespace: kargo-demo-{name}" in rendered
        assert "demo/guestbook:v1.2.0" in git_log_subject(gitops, f"stage/{name}")
        stage.refresh_from_db()
        assert stage_phase(stage) == "Ready"
        assert stage.status["lastPromotion"]["name"] == promotion.name
        history = stage.status["freightHistory"]
        assert history[0]["items"]["Warehouse/guestbook"]["name"] == freight.name
        assert history[0]["verificationHistory"][0]["phase"] == "Successful"
        freight.refresh_from_db()
        assert name in freight.status["currentlyIn"]
        assert name in freight.status["verifiedIn"]


def test_unavailable_freight_is_refused_with_the_reason(demo):
    prod = Stage.objects.get(project=demo, name="prod")
    with pytest.raises(PromotionError, match="not yet verified in uat"):
        do_promote(prod, newest(demo), actor="user:tester")
    assert not Promotion.objects.exists()


def test_approval_makes_freight_available_without_upstream(demo):
    from freight.actions import do_approve

    freight = newest(demo)
    prod = Stage.objects.get(project=demo, name="prod")
    do_approve(freight, "prod", "user:tester")
    freight.refresh_from_db()
    assert availability(prod, freight) == (True, "approved")
    promotion = do_promote(prod, freight, actor="user:tester")
    # The promotion runs when do_promote commits (tasks run inline in tests): read what it became.
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message


def test_a_failing_step_fails_the_promotion_and_skips_the_rest(demo):
    stage = Stage.objects.get(project=demo, name="test")
    spec = stage.spec
    spec["promotionTemplate"]["spec"]["steps"][3]["config"]["path"] = "./src/stages/nowhere"
    Stage.objects.filter(id=stage.id).update(spec=spec)
    stage.refresh_from_db()
    promotion = do_promote(stage, newest(demo), actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    statuses = [s["status"] for s in promotion.status["stepExecutionMetadata"]]
    assert statuses == ["Succeeded", "Succeeded", "Succeeded", "Errored", "Skipped", "Skipped"]
    assert "step-4 (kustomize-build) errored" in promotion.message
    stage.refresh_from_db()
    assert stage_phase(stage) == "Failed"
    assert stage.status.get("freightHistory") == []


def test_promotions_queue_one_at_a_time_in_order(demo, settings):
    from kargo_ui.celery import app

    stage = Stage.objects.get(project=demo, name="test")
    freight = list(Freight.objects.filter(project=demo))
    app.conf.task_always_eager = False  # queue without running, to look at the queue
    try:
        first = do_promote(stage, freight[0], actor="user:a")
        second = do_promote(stage, freight[0], actor="user:b")
    finally:
        app.conf.task_always_eager = True
    from stages.actions import do_start_next

    started = do_start_next(stage.id)
    assert started.id == first.id
    assert do_start_next(stage.id) is None  # one at a time
    second.refresh_from_db()
    assert second.phase == "Pending"


def test_seeding_the_demo_twice_changes_nothing(demo, capsys):
    import io

    out = io.StringIO()
    call_command("demo", "--no-registry", stdout=out)
    assert "stage/test unchanged" in out.getvalue()
    assert Stage.objects.filter(project=demo).count() == 3


def test_continue_on_error_and_status_follow_kargo(demo):
    """A failed continueOnError step does not fail the promotion, success() ignores it, and
    status('alias') still reports what really happened."""
    stage = Stage.objects.get(project=demo, name="test")
    spec = stage.spec
    steps = spec["promotionTemplate"]["spec"]["steps"]
    steps.insert(
        1,
        {
            "uses": "git-clear",
            "as": "shaky",
            "continueOnError": True,
            "config": {"path": "./nowhere/../../escape"},
        },
    )
    steps.append(
        {
            "uses": "compose-output",
            "as": "report",
            "if": "${{ status('shaky') == 'Errored' }}",
            "config": {"shaky": "${{ status('shaky') }}"},
        }
    )
    Stage.objects.filter(id=stage.id).update(spec=spec)
    stage.refresh_from_db()
    promotion = do_promote(stage, newest(demo), actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    statuses = {s["alias"]: s["status"] for s in promotion.status["stepExecutionMetadata"]}
    assert statuses["shaky"] == "Errored"
    assert statuses["report"] == "Succeeded"
    assert promotion.status["state"]["report"] == {"shaky": "Errored"}


def test_retry_error_threshold_reruns_an_erroring_step(demo, data_dir, monkeypatch):
    """retry.errorThreshold: 3 gives a step three tries; the third succeeds once the cause is gone."""
    from stages import engine

    monkeypatch.setattr(engine, "RETRY_DELAY", 0)
    calls = []
    step_cls = engine.get_step("git-clear")
    real_run = step_cls.run

    def flaky(self, ctx, config):
        calls.append(1)
        if len(calls) < 3:
            raise engine.StepError("transient failure")
        return real_run(self, ctx, config)

    monkeypatch.setattr(step_cls, "run", flaky)
    stage = Stage.objects.get(project=demo, name="test")
    spec = stage.spec
    spec["promotionTemplate"]["spec"]["steps"][1]["retry"] = {"errorThreshold": 3}
    Stage.objects.filter(id=stage.id).update(spec=spec)
    stage.refresh_from_db()
    promotion = do_promote(stage, newest(demo), actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    clear = promotion.status["stepExecutionMetadata"][1]
    assert (clear["status"], clear["errorCount"]) == ("Succeeded", 2)
    assert len(calls) == 3


def add_report_step(stage: Stage, config: dict, template_vars: list | None = None) -> Stage:
    spec = stage.spec
    template = spec["promotionTemplate"]["spec"]
    template["steps"].append({"uses": "compose-output", "as": "report", "config": config})
    if template_vars:
        template["vars"] = template.get("vars", []) + template_vars
    Stage.objects.filter(id=stage.id).update(spec=spec)
    stage.refresh_from_db()
    return stage


def test_times_and_durations_from_expressions_are_stored_as_kargo_prints_them(demo):
    """now() and duration() give values JSON has no form for: a config or var holding one gets
    the text Kargo's templates give it (RFC 3339, Go's duration), as when it is interpolated."""
    stage = add_report_step(
        Stage.objects.get(project=demo, name="test"),
        {
            "at": "${{ vars.deployedAt }}",
            "now": "${{ now() }}",
            "ttl": "${{ duration('1h30m') }}",
            "list": ["${{ duration('90s') }}", "soak ${{ duration('90s') }}"],
        },
        [{"name": "deployedAt", "value": "${{ now() }}"}],
    )
    promotion = do_promote(stage, newest(demo), actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    report = promotion.status["state"]["report"]
    rfc3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
    assert re.match(rfc3339, report["at"]) and re.match(rfc3339, report["now"]), report
    assert report["ttl"] == "1h30m0s"
    assert report["list"] == ["1m30s", "soak 1m30s"]


def test_a_value_with_no_json_form_errors_the_step_at_once(demo):
    stage = add_report_step(Stage.objects.get(project=demo, name="test"), {"f": "${{ success }}"})
    promotion = do_promote(stage, newest(demo), actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    assert promotion.message == (
        "step report (compose-output) errored: config.f evaluated to a func, which has no JSON form"
    )
    report = promotion.status["stepExecutionMetadata"][-1]
    assert (report["alias"], report["status"]) == ("report", "Errored")
    stage.refresh_from_db()
    assert stage.status["lastPromotion"]["status"]["phase"] == "Errored"
