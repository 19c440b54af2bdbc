"""The promotion queue's claims: a promotion is Running only while a worker's run holds it (the
start task claims it and runs it; a resume is taken over by the worker that runs it), two
workers starting or resuming the same Stage never both run a promotion, and a run writes its
steps' progress when a step changes state, not more often."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from freight.models import Freight
from kargo_ui.celery import app
from stages import actions, engine, tasks
from stages.actions import LostOwnership, do_promote, do_recover, do_start_next, do_step_progress
from stages.engine import recover_lost
from stages.models import Promotion, Stage

NO_UNCLAIMED_RUNNING = "a promotion was made Running without a claim"


class no_worker:
    """Tasks are sent nowhere, as when a promotion is created by the CLI with no server running."""

    def __enter__(self):
        app.conf.task_always_eager = False

    def __exit__(self, *exc):
        app.conf.task_always_eager = True


@pytest.fixture
def running_needs_a_claim(demo):
    """A trigger in the database refusing any write that leaves a promotion Running without a
    claim: every path a test takes is checked, from whichever thread, not only what it asserts."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for event in ("INSERT", "UPDATE"):
                cursor.execute(
                    f"CREATE TRIGGER running_needs_a_claim_{event.lower()} BEFORE {event} "
                    "ON stages_promotion WHEN NEW.phase = 'Running' AND NEW.claimed_by = '' "
                    f"BEGIN SELECT RAISE(ABORT, '{NO_UNCLAIMED_RUNNING}'); END"
                )
        else:
            cursor.execute(
                "CREATE FUNCTION running_needs_a_claim() RETURNS trigger AS $$ BEGIN "
                "IF NEW.phase = 'Running' AND NEW.claimed_by = '' THEN "
                f"RAISE EXCEPTION '{NO_UNCLAIMED_RUNNING}'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER running_needs_a_claim BEFORE INSERT OR UPDATE ON stages_promotion "
                "FOR EACH ROW EXECUTE FUNCTION running_needs_a_claim()"
            )
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER running_needs_a_claim_insert")
            cursor.execute("DROP TRIGGER running_needs_a_claim_update")
        else:
            cursor.execute("DROP TRIGGER running_needs_a_claim ON stages_promotion")
            cursor.execute("DROP FUNCTION running_needs_a_claim()")


def newest(project):
    return Freight.objects.filter(project=project).first()


def queued(project, stage_name: str = "test", count: int = 1) -> list[Promotion]:
    """Promotions created with no worker to start them: Pending."""
    stage = Stage.objects.get(project=project, name=stage_name)
    with no_worker():
        return [do_promote(stage, newest(project), actor="cli:x") for _ in range(count)]


def race(count: int, work) -> list:
    """`work(i)` in `count` threads at once (each with its own database connection)."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def one(i):
        try:
            barrier.wait()
            results[i] = work(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_trigger_refuses_an_unclaimed_running_promotion(demo, running_needs_a_claim):
    (promotion,) = queued(demo)
    with pytest.raises(Exception, match=NO_UNCLAIMED_RUNNING):
        Promotion.objects.filter(id=promotion.id).update(phase="Running")


def test_a_promotion_is_running_only_once_the_worker_that_runs_it_claimed_it(
    demo, running_needs_a_claim, monkeypatch
):
    (promotion,) = queued(demo)
    promotion.refresh_from_db()
    assert (promotion.phase, promotion.claimed_by, promotion.started_at) == ("Pending", "", None)

    seen = {}
    real_execute = engine.execute

    def execute(promotion, work_dir, claimed_by):
        seen.update(
            Promotion.objects.filter(id=promotion.id)
            .values("phase", "claimed_by", "heartbeat_at", "started_at")
            .get(),
            token=claimed_by,
        )
        return real_execute(promotion, work_dir, claimed_by)

    monkeypatch.setattr(engine, "execute", execute)
    tasks.start_next_promotion(promotion.stage_id)  # the start task, as a worker runs it

    # Its steps ran under the claim that made it Running, taken in the task that ran it.
    assert seen["phase"] == "Running"
    assert seen["claimed_by"] == seen["token"] != ""
    assert seen["heartbeat_at"] is not None
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    assert promotion.started_at == seen["started_at"]


def test_of_two_workers_starting_one_stage_one_runs_its_head_and_the_other_nothing(
    demo, running_needs_a_claim
):
    first, second = queued(demo, count=2)
    stage_id = first.stage_id
    started = race(4, lambda i: do_start_next(stage_id, claimed_by=f"worker-{i}"))
    winners = [p for p in started if p is not None]
    assert len(winners) == 1
    assert winners[0].id == first.id  # first in, first out
    first.refresh_from_db()
    assert first.phase == "Running"
    assert first.claimed_by == winners[0].claimed_by
    second.refresh_from_db()
    assert second.phase == "Pending"

    # The winner runs it; its finish starts the next, which runs after it ended.
    engine.run(first.id, first.claimed_by)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.phase, second.phase) == ("Succeeded", "Succeeded")
    assert second.started_at >= first.finished_at


def test_of_two_workers_resuming_one_promotion_one_takes_it_over(demo, running_needs_a_claim):
    (promotion,) = queued(demo)
    dead = "dead-host:1:1:0000"
    do_start_next(promotion.stage_id, claimed_by=dead)  # its worker then died
    stopped = timezone.now() - timedelta(minutes=5)
    Promotion.objects.filter(id=promotion.id).update(heartbeat_at=stopped)

    # Reconcile only sends resume tasks: with no worker to take one, the promotion stays as the
    # dead worker left it, claimed by it; it is never handed out unclaimed.
    with no_worker():
        assert recover_lost() == 1
        assert recover_lost() == 1  # still stale: sent again, and again harmless
    promotion.refresh_from_db()
    assert (promotion.claimed_by, promotion.resumes, promotion.heartbeat_at) == (dead, 0, stopped)

    cutoff = timezone.now() - timedelta(seconds=30)
    outcomes = race(4, lambda i: do_recover(promotion.id, cutoff, 3, claimed_by=f"worker-{i}"))
    assert sorted(outcomes) == ["", "", "", "resumed"]
    promotion.refresh_from_db()
    assert promotion.claimed_by == f"worker-{outcomes.index('resumed')}"
    assert promotion.resumes == 1
    assert promotion.phase == "Running"
    # The dead worker, back, writes nothing more.
    with pytest.raises(LostOwnership):
        do_step_progress(promotion, dead)
    engine.run(promotion.id, promotion.claimed_by)
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    assert promotion.message == "All 6 steps succeeded (resumed once after the worker stopped)"


def test_a_resume_task_runs_the_promotion_it_takes_over(demo, running_needs_a_claim):
    (promotion,) = queued(demo)
    do_start_next(promotion.stage_id, claimed_by="dead-host:1:1:0000")
    Promotion.objects.filter(id=promotion.id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert recover_lost() == 1  # its resume task runs here (tasks run inline in tests)
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    assert promotion.resumes == 1
    tasks.resume_promotion(promotion.id)  # one sent twice does nothing
    promotion.refresh_from_db()
    assert (promotion.phase, promotion.resumes) == ("Succeeded", 1)


def status_writes(queries: list[dict], promotion: Promotion) -> int:
    """UPDATEs of the promotion's row that write its status."""
    row = re.compile(rf'"stages_promotion"\."id" = {promotion.id}\b')
    return sum(
        1
        for q in queries
        if q["sql"].startswith('UPDATE "stages_promotion" SET')
        and '"status" =' in q["sql"]
        and row.search(q["sql"])
    )


def test_progress_is_written_when_a_step_changes_state(demo):
    stage = Stage.objects.get(project=demo, name="test")
    with CaptureQueriesContext(connection) as ctx:
        promotion = do_promote(stage, newest(demo), actor="cli:x")  # runs here, inline
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    steps = promotion.status["stepExecutionMetadata"]
    assert [m["status"] for m in steps] == ["Succeeded"] * 6
    # The claim; each step's start, which also records the end of the one before; the last
    # step's end; the finish. (Heartbeats write only heartbeat_at, from their own thread.)
    assert status_writes(ctx.captured_queries, promotion) == 1 + len(steps) + 1 + 1


def test_a_pending_promotion_whose_start_was_lost_is_started_by_reconcile(demo):
    (promotion,) = queued(demo)
    tasks.reconcile()  # just created: its start task may still be on its way
    promotion.refresh_from_db()
    assert promotion.phase == "Pending"
    Promotion.objects.filter(id=promotion.id).update(
        created_at=timezone.now() - tasks.START_GRACE - timedelta(seconds=1)
    )
    tasks.reconcile()
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message


def test_the_next_promotion_waits_from_when_the_one_before_ended(demo):
    first, second = queued(demo, count=2)
    long_ago = timezone.now() - timedelta(minutes=5)
    Promotion.objects.filter(id__in=[first.id, second.id]).update(created_at=long_ago)
    tasks.reconcile()  # both waited long: the head is started, and runs
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.phase == "Succeeded", first.message
    # Its finish started the second at once (tasks run inline here).
    assert second.phase == "Succeeded", second.message
    third, fourth = queued(demo, count=2)
    Promotion.objects.filter(id__in=[third.id, fourth.id]).update(created_at=long_ago)
    with no_worker():  # the third runs and ends now; the start task its end sends is lost
        actions.do_start_next(third.stage_id)
        third.refresh_from_db()
        actions.do_finish(third, "Succeeded", "done")
    tasks.reconcile()  # the fourth has waited only since then
    fourth.refresh_from_db()
    assert fourth.phase == "Pending"


def test_reconcile_sends_a_waiting_promotion_one_start_task_per_heartbeat_timeout(
    demo, settings, monkeypatch
):
    """A queue that is only long (every worker busy) does not fill up with start tasks."""
    (promotion,) = queued(demo)
    Promotion.objects.filter(id=promotion.id).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    sent = []
    monkeypatch.setattr(tasks.start_next_promotion, "delay", lambda *args: sent.append(args))
    tasks.reconcile()
    tasks.reconcile()
    assert sent == [(promotion.stage_id,)]
    promotion.refresh_from_db()
    assert promotion.phase == "Pending"
    Promotion.objects.filter(id=promotion.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT + 1)
    )
    tasks.reconcile()
    assert sent == [(promotion.stage_id,)] * 2
