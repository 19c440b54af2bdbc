"""Level-triggered recovery: the periodic reconcile finds work no task picked up."""

import subprocess
from datetime import timedelta

from django.utils import timezone

from freight.models import Freight, Warehouse
from kargo_ui.celery import app
from stages.actions import do_promote, do_start_next
from stages.engine import recover_lost
from stages.models import Promotion, Stage
from stages.tasks import reconcile


class no_worker:
    """Tasks are sent nowhere, as when a promotion is created by the CLI with no server running."""

    def __enter__(self):
        app.conf.task_always_eager = False

    def __exit__(self, *exc):
        app.conf.task_always_eager = True


def newest(project):
    return Freight.objects.filter(project=project).first()


def started_promotion(project) -> Promotion:
    """A promotion the Stage has taken (Running) that no worker has run yet."""
    with no_worker():
        promotion = do_promote(Stage.objects.get(name="test"), newest(project), actor="cli:x")
        do_start_next(promotion.stage_id)
    return Promotion.objects.get(id=promotion.id)


def test_a_pending_promotion_nobody_started_is_picked_up(demo):
    with no_worker():
        promotion = do_promote(Stage.objects.get(name="test"), newest(demo), actor="cli:x")
    promotion.refresh_from_db()
    assert promotion.phase == "Pending"
    reconcile()
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded"


def test_a_running_promotion_whose_task_was_lost_is_run(demo, settings):
    promotion = started_promotion(demo)
    Promotion.objects.filter(id=promotion.id).update(
        started_at=timezone.now() - timedelta(minutes=5)
    )
    reconcile()
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded"


def test_a_worker_that_died_mid_step_leaves_an_errored_promotion_with_the_cause(demo):
    promotion = started_promotion(demo)
    promotion.refresh_from_db()
    # What a worker killed during step 2 leaves behind: a claimed run, a stale heartbeat.
    stale = timezone.now() - timedelta(minutes=5)
    promotion.status["stepExecutionMetadata"] = [
        {
            "alias": "step-1",
            "status": "Succeeded",
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:01Z",
        },
        {"alias": "step-2", "status": "Running", "startedAt": "2026-01-01T00:00:01Z"},
    ]
    Promotion.objects.filter(id=promotion.id).update(heartbeat_at=stale, status=promotion.status)
    assert recover_lost() == 1
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    assert "stopped while running step step-2" in promotion.message
    assert promotion.status["stepExecutionMetadata"][1]["status"] == "Errored"
    stage = Stage.objects.get(id=promotion.stage_id)
    assert stage.status["lastPromotion"]["status"]["phase"] == "Errored"
    assert "currentPromotion" not in stage.status
    # The queue moves on: the next promotion for the Stage runs.
    second = do_promote(stage, newest(demo), actor="cli:x")
    second.refresh_from_db()
    assert second.phase == "Succeeded"


def test_a_live_heartbeat_is_left_alone(demo):
    promotion = started_promotion(demo)
    Promotion.objects.filter(id=promotion.id).update(heartbeat_at=timezone.now())
    assert recover_lost() == 0
    promotion.refresh_from_db()
    assert promotion.phase == "Running"


def test_abort_stops_a_running_promotion_before_its_next_step(demo):
    from stages.actions import do_abort
    from stages.engine import run

    promotion = started_promotion(demo)
    with no_worker():
        do_abort(Promotion.objects.get(id=promotion.id), "user:ops")
        run(promotion.id)
    promotion.refresh_from_db()
    assert promotion.phase == "Aborted"
    assert promotion.message == "Promotion terminated by user:ops"


def test_interval_discovery_creates_freight_for_a_new_release(demo, data_dir, settings):
    from kargo_ui.management.commands.demo import GIT_ENV

    work = data_dir / "demo" / "work" / "app"
    env = {"PATH": "/usr/bin:/bin", **GIT_ENV}
    (work / "main.py").write_text("print('guestbook 1.3.0')\n")
    for args in (
        ["add", "-A"],
        ["commit", "-qm", "Faster"],
        ["tag", "v1.3.0"],
        ["push", "-q", "--tags", str(data_dir / "demo/repos/guestbook-app.git"), "main"],
    ):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    settings.MIN_DISCOVERY_INTERVAL = 0
    Warehouse.objects.update(last_discovery_at=timezone.now() - timedelta(hours=1))
    reconcile()
    assert newest(demo).commits[0]["tag"] == "v1.3.0"


def test_discovery_failure_is_shown_on_the_warehouse(demo):
    warehouse = Warehouse.objects.get()
    spec = warehouse.spec
    spec["subscriptions"][0]["git"]["repoURL"] = "file:///nonexistent/app.git"
    Warehouse.objects.filter(id=warehouse.id).update(spec=spec, generation=2)
    reconcile()
    warehouse.refresh_from_db()
    healthy = next(c for c in warehouse.status["conditions"] if c["type"] == "Healthy")
    assert healthy["status"] == "False"
    assert "/nonexistent/app.git" in healthy["message"]


def test_a_late_finish_does_not_overwrite_a_recovered_promotion(demo):
    from stages.actions import do_finish

    promotion = started_promotion(demo)
    Promotion.objects.filter(id=promotion.id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert recover_lost() == 1
    assert recover_lost() == 0  # a second reconciler finds nothing to do
    promotion.refresh_from_db()
    # The worker that was thought dead comes back and tries to record success.
    assert do_finish(promotion, "Succeeded", "All 6 steps succeeded") is False
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    assert Stage.objects.get(id=promotion.stage_id).status.get("freightHistory") == []


def test_aborting_a_queued_promotion_leaves_the_running_one_alone(demo):
    from stages.actions import do_abort
    from stages.queries import stage_phase

    stage = Stage.objects.get(name="test")
    with no_worker():
        first = do_promote(stage, newest(demo), actor="cli:x")
        second = do_promote(stage, newest(demo), actor="cli:x")
        do_start_next(stage.id)
        do_abort(second, "user:ops")
    second.refresh_from_db()
    assert second.phase == "Aborted"
    stage.refresh_from_db()
    assert stage.status["currentPromotion"]["name"] == first.name
    assert stage_phase(stage) == "Promoting"


def test_refreshing_a_stage_starts_its_queued_promotion_with_a_worker(demo):
    from stages.actions import do_refresh_stage

    stage = Stage.objects.get(name="test")
    with no_worker():
        promotion = do_promote(stage, newest(demo), actor="cli:x")
    do_refresh_stage(stage, "user:ops")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded"


def test_a_crash_outside_any_step_ends_the_promotion_errored_with_the_cause(demo, monkeypatch):
    from stages import engine

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "build_env", broken)
    promotion = do_promote(Stage.objects.get(name="test"), newest(demo), actor="cli:x")
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    assert promotion.message == "internal error: RuntimeError: disk on fire"
    assert not engine.work_dir_for(promotion).exists()


def test_a_running_discovery_is_not_started_again(demo):
    from freight.actions import do_discover
    from freight.tasks import discover_warehouse

    warehouse = Warehouse.objects.get()
    Warehouse.objects.filter(id=warehouse.id).update(
        discovery_started_at=timezone.now(), refresh_requested_at=timezone.now()
    )
    with no_worker():
        sent = []
        original = discover_warehouse.delay
        discover_warehouse.delay = lambda *a: sent.append(a)
        try:
            reconcile()
        finally:
            discover_warehouse.delay = original
    assert sent == []
    assert do_discover(warehouse.id) is None  # the lease holder is still at it
    Warehouse.objects.filter(id=warehouse.id).update(
        discovery_started_at=timezone.now() - timedelta(hours=1)
    )
    do_discover(warehouse.id)  # an expired lease is taken over
    warehouse.refresh_from_db()
    assert warehouse.discovery_started_at is None
    assert warehouse.refresh_requested_at is None


def test_an_unexpected_discovery_crash_is_shown_and_releases_the_lease(demo, monkeypatch):
    from freight import actions

    def broken(*args, **kwargs):
        raise PermissionError("git-cache is read-only")

    monkeypatch.setattr(actions, "discover_git", broken)
    warehouse = Warehouse.objects.get()
    actions.do_discover(warehouse.id)
    warehouse.refresh_from_db()
    healthy = next(c for c in warehouse.status["conditions"] if c["type"] == "Healthy")
    assert healthy["message"] == "internal error: PermissionError: git-cache is read-only"
    assert warehouse.discovery_started_at is None
