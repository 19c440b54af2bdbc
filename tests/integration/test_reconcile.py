"""Level-triggered recovery: the periodic reconcile finds work no task picked up, and resumes a
promotion whose worker stopped."""

import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from freight.models import Freight, Warehouse
from kargo.times import rfc3339
from kargo_ui.celery import app
from projects.models import Event
from stages import actions, engine, tasks
from stages.actions import LostOwnership, do_finish, do_promote, do_start_next, do_step_progress
from stages.engine import recover_lost
from stages.models import Promotion, Stage
from stages.queries import stage_phase
from stages.tasks import START_GRACE, reconcile
from tests.conftest import git_show


class no_worker:
    """Tasks are sent nowhere, as when a promotion is created by the CLI with no server running."""

    def __enter__(self):
        app.conf.task_always_eager = False

    def __exit__(self, *exc):
        app.conf.task_always_eager = True


def newest(project):
    return Freight.objects.filter(project=project).first()


def queued_promotion(project) -> Promotion:
    """A promotion nobody has started: created with no worker to send its start task to."""
    with no_worker():
        return do_promote(Stage.objects.get(name="test"), newest(project), actor="cli:x")


def started_promotion(project) -> Promotion:
    """A promotion the Stage has taken: Running, claimed by a run (this test's) that has run no
    step yet."""
    promotion = queued_promotion(project)
    do_start_next(promotion.stage_id)
    return Promotion.objects.get(id=promotion.id)


class WorkerKilled(BaseException):
    """kill -9 of the worker, as its run sees it: no `except Exception` in the engine catches it, so
    nothing is recorded after it. (The run's `finally` still removes its work dir, which is what a
    resume on another machine finds anyway: no work dir.)"""


def kill_worker_when(monkeypatch, alias: str, status: str, record: bool = True):
    """Make the next run stop dead where step `alias` reaches `status`: after that is saved
    (`record`), or instead of saving it (the step's work is done, its record is not)."""
    real = actions.do_step_progress

    def progress(promotion, claimed_by):
        entry = promotion.status["stepExecutionMetadata"][promotion.status["currentStep"]]
        hit = (entry["alias"], entry["status"]) == (alias, status)
        if hit and not record:
            raise WorkerKilled(alias)
        real(promotion, claimed_by)
        if hit:
            raise WorkerKilled(alias)

    monkeypatch.setattr(actions, "do_step_progress", progress)


def crash(promotion: Promotion, monkeypatch, task=None) -> Promotion:
    """Run the promotion as a worker does, in its start task (or `task`: a resume), until the
    planted kill; then leave it as a dead worker does: claimed, Running, its heartbeat going
    stale."""
    with pytest.raises(WorkerKilled):
        if task is None:
            tasks.start_next_promotion(promotion.stage_id)
        else:
            task(promotion.id)
    monkeypatch.undo()
    promotion.refresh_from_db()
    assert promotion.phase == "Running" and promotion.claimed_by
    Promotion.objects.filter(id=promotion.id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    promotion.refresh_from_db()
    return promotion


def gitops(data_dir):
    return data_dir / "demo" / "repos" / "guestbook-gitops.git"


def branch_log(data_dir, branch: str) -> list[str]:
    """The branch's commits, newest first, as `<sha> <tree> <subject>`."""
    return subprocess.run(
        ["git", "--git-dir", str(gitops(data_dir)), "log", "--format=%H %T %s", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def assert_resumed_and_pushed_once(promotion: Promotion, data_dir, freight: Freight):
    """Succeeded after one resume; the branch got exactly one commit (on the orphan one that
    git-clone creates), the one the push step reports; the Stage shows what the branch holds."""
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    assert promotion.message == "All 6 steps succeeded (resumed once after the worker stopped)"
    assert promotion.resumes == 1
    log = branch_log(data_dir, "stage/test")
    assert len(log) == 2, log  # "Initial commit" + the promotion's one commit
    assert log[1].endswith("Initial commit")
    assert promotion.status["state"]["step-6"]["commit"] == log[0].split()[0]
    tag = freight.commits[0]["tag"]
    assert f"demo/guestbook:{tag}" in git_show(gitops(data_dir), "stage/test", "manifests.yaml")
    stage = Stage.objects.get(id=promotion.stage_id)
    assert stage_phase(stage) == "Ready"
    assert stage.status["lastPromotion"]["name"] == promotion.name
    assert stage.status["freightHistory"][0]["items"]["Warehouse/guestbook"]["name"] == freight.name
    assert Event.objects.filter(reason="PromotionResumed").count() == 1


def test_a_pending_promotion_nobody_started_is_picked_up(demo):
    promotion = queued_promotion(demo)
    promotion.refresh_from_db()
    assert promotion.phase == "Pending"
    # Once it has waited longer than a start task takes to arrive.
    Promotion.objects.filter(id=promotion.id).update(
        created_at=timezone.now() - START_GRACE - timedelta(seconds=1)
    )
    reconcile()
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded"


def test_a_promotion_whose_worker_died_before_its_first_step_is_resumed(demo):
    promotion = started_promotion(demo)
    Promotion.objects.filter(id=promotion.id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    reconcile()
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded"
    assert promotion.resumes == 1


def test_a_running_promotion_an_older_version_left_unclaimed_is_run(demo):
    """Before a promotion was made Running by the worker that claims it, it was marked Running
    first and handed to a worker after; one whose hand-off was lost then is resumed too."""
    promotion = started_promotion(demo)
    Promotion.objects.filter(id=promotion.id).update(
        claimed_by="", heartbeat_at=None, started_at=timezone.now() - timedelta(minutes=5)
    )
    reconcile()
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded"


def test_a_crash_before_git_push_resumes_and_pushes_once(demo, data_dir, monkeypatch):
    promotion = queued_promotion(demo)
    kill_worker_when(monkeypatch, "step-6", "Running")
    promotion = crash(promotion, monkeypatch)
    steps = promotion.status["stepExecutionMetadata"]
    assert [m["status"] for m in steps] == ["Succeeded"] * 5 + ["Running"]
    assert len(branch_log(data_dir, "stage/test")) == 1  # only git-clone's orphan commit
    stopped = rfc3339(promotion.heartbeat_at)

    assert recover_lost() == 1
    assert_resumed_and_pushed_once(promotion, data_dir, newest(demo))
    steps = promotion.status["stepExecutionMetadata"]
    assert [m["status"] for m in steps] == ["Succeeded"] * 6
    # Every step was re-run in a fresh work dir, and says so.
    note = f"resumed after the worker stopped at {stopped} while running step step-6"
    assert all(m["message"].startswith(note) for m in steps), steps
    assert "(resume 1 of at most 3)" in steps[0]["message"]
    assert "nothing to push" not in steps[5]["message"]  # this push was the first


def test_a_crash_after_git_push_landed_before_it_was_recorded_does_not_push_again(
    demo, data_dir, monkeypatch
):
    promotion = queued_promotion(demo)
    kill_worker_when(monkeypatch, "step-6", "Succeeded", record=False)
    promotion = crash(promotion, monkeypatch)
    assert promotion.status["stepExecutionMetadata"][-1]["status"] == "Running"
    landed = branch_log(data_dir, "stage/test")
    assert len(landed) == 2  # the push landed; the database does not know

    assert recover_lost() == 1
    assert_resumed_and_pushed_once(promotion, data_dir, newest(demo))
    assert branch_log(data_dir, "stage/test") == landed  # not pushed twice, nothing rewritten
    steps = {m["alias"]: m for m in promotion.status["stepExecutionMetadata"]}
    # The fresh clone already holds the change: nothing to commit, nothing to push.
    assert steps["commit"]["message"].endswith("nothing to commit; HEAD unchanged")
    assert "nothing to push: remote branch 'stage/test' is already at" in steps["step-6"]["message"]
    assert promotion.status["state"]["commit"]["commit"] == landed[0].split()[0]


def test_a_forced_push_that_landed_is_not_made_again(demo, data_dir, monkeypatch):
    """generateTargetBranch pushes with --force to kargo/promotion/<name>: the re-run makes its own
    commit (the branch it cloned does not have the landed one), and must not replace the landed
    commit with it."""
    stage = Stage.objects.get(name="test")
    spec = stage.spec
    push = spec["promotionTemplate"]["spec"]["steps"][5]["config"]
    push.pop("branch")
    push["generateTargetBranch"] = True
    Stage.objects.filter(id=stage.id).update(spec=spec)
    promotion = queued_promotion(demo)
    kill_worker_when(monkeypatch, "step-6", "Succeeded", record=False)
    promotion = crash(promotion, monkeypatch)
    branch = f"kargo/promotion/{promotion.name}"
    landed = branch_log(data_dir, branch)
    # The re-run's commit differs from the landed one as it would a second later (its date):
    # here, by its message.
    spec = promotion.spec
    commit = spec["steps"][4]["config"]
    commit.pop("messageFromSteps")
    commit["message"] = "made again by the resumed run"
    Promotion.objects.filter(id=promotion.id).update(spec=spec)

    assert recover_lost() == 1
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    assert branch_log(data_dir, branch) == landed
    steps = {m["alias"]: m for m in promotion.status["stepExecutionMetadata"]}
    assert "nothing to push" in steps["step-6"]["message"]
    assert promotion.status["state"]["step-6"] == {
        "commit": landed[0].split()[0],
        "branch": branch,
    }


def test_a_crash_after_all_steps_before_the_finish_is_recorded_finishes_without_rerunning(
    demo, data_dir, monkeypatch
):
    promotion = queued_promotion(demo)
    real_finish = actions.do_finish

    def killed_before_finish(promotion, phase, message, claimed_by=None):
        if claimed_by:  # the worker's own finish, not a recovery's
            raise WorkerKilled("finish")
        return real_finish(promotion, phase, message, claimed_by)

    monkeypatch.setattr(actions, "do_finish", killed_before_finish)
    promotion = crash(promotion, monkeypatch)
    before = promotion.status["stepExecutionMetadata"]
    assert [m["status"] for m in before] == ["Succeeded"] * 6
    step = engine.get_step("git-clone")
    monkeypatch.setattr(step, "run", lambda *a: pytest.fail("a finished step was run again"))

    assert recover_lost() == 1
    assert_resumed_and_pushed_once(promotion, data_dir, newest(demo))
    # Nothing was re-run: the steps' records are those of the run that did the work.
    assert promotion.status["stepExecutionMetadata"] == before


def test_a_promotion_whose_worker_keeps_dying_ends_errored_with_the_cause(
    demo, data_dir, settings, monkeypatch
):
    settings.PROMOTION_MAX_RESUMES = 2
    promotion = queued_promotion(demo)
    kill_worker_when(monkeypatch, "step-4", "Running")
    promotion = crash(promotion, monkeypatch)
    for attempt in (1, 2):  # the resume task, as a worker runs it, dies the same way
        kill_worker_when(monkeypatch, "step-4", "Running")
        promotion = crash(promotion, monkeypatch, task=tasks.resume_promotion)
        assert (promotion.phase, promotion.resumes) == ("Running", attempt)
        assert promotion.message.startswith("resumed after the worker stopped at")
    assert recover_lost() == 1  # its resume task (run here) finds no resume left
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    assert promotion.resumes == 2
    assert "the worker running this promotion stopped while running step step-4" in (
        promotion.message
    )
    assert promotion.message.endswith("it had been resumed 2 times; promote again to retry")
    steps = promotion.status["stepExecutionMetadata"]
    assert [m["status"] for m in steps] == ["Succeeded"] * 3 + ["Errored"]
    assert steps[3]["message"] == "the worker stopped during this step"
    assert steps[0]["message"].startswith("resumed after the worker stopped at")
    stage = Stage.objects.get(id=promotion.stage_id)
    assert stage.status["lastPromotion"]["status"]["phase"] == "Errored"
    assert "currentPromotion" not in stage.status
    assert not engine.work_dir_for(promotion).exists()
    # The queue moves on: the next promotion for the Stage runs.
    second = do_promote(stage, newest(demo), actor="cli:x")
    second.refresh_from_db()
    assert second.phase == "Succeeded"


def test_a_lost_resume_task_is_sent_again(demo, data_dir, monkeypatch):
    promotion = queued_promotion(demo)
    kill_worker_when(monkeypatch, "step-2", "Running")
    promotion = crash(promotion, monkeypatch)
    dead = promotion.claimed_by
    with no_worker():
        assert recover_lost() == 1  # the resume task goes nowhere
    promotion.refresh_from_db()
    # Untouched: still the dead worker's, never handed out without a worker to hold it.
    assert (promotion.phase, promotion.claimed_by, promotion.resumes) == ("Running", dead, 0)
    reconcile()  # still stale: sent again, and run
    assert_resumed_and_pushed_once(promotion, data_dir, newest(demo))


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
        run(promotion.id, promotion.claimed_by)
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


def test_a_worker_taken_for_dead_cannot_write_over_the_run_that_replaced_it(demo, monkeypatch):
    promotion = queued_promotion(demo)
    kill_worker_when(monkeypatch, "update-image", "Running")
    promotion = crash(promotion, monkeypatch)
    old_claim = promotion.claimed_by
    cutoff = timezone.now() - timedelta(seconds=30)
    new_claim = actions.claim_token()
    # A worker's resume task takes the run over; a second one finds nothing to do.
    assert actions.do_recover(promotion.id, cutoff, 3, claimed_by=new_claim) == "resumed"
    assert actions.do_recover(promotion.id, cutoff, 3, claimed_by=actions.claim_token()) == ""
    # The worker that was thought dead comes back: its beats, progress and finish all filter on
    # its claim, which is no longer the promotion's.
    assert not Promotion.objects.filter(id=promotion.id, claimed_by=old_claim).exists()
    with pytest.raises(LostOwnership):
        do_step_progress(promotion, old_claim)
    assert do_finish(promotion, "Succeeded", "All 6 steps succeeded", claimed_by=old_claim) is False
    promotion.refresh_from_db()
    assert promotion.phase == "Running"
    assert Stage.objects.get(id=promotion.stage_id).status.get("freightHistory") == []
    # The run that took it over completes it.
    engine.run(promotion.id, new_claim)
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    assert do_finish(promotion, "Errored", "late", claimed_by=old_claim) is False


def test_one_start_only_claims_a_promotion(demo):
    promotion = queued_promotion(demo)
    assert do_start_next(promotion.stage_id).id == promotion.id
    assert do_start_next(promotion.stage_id) is None


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
