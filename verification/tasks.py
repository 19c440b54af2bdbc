"""Thin Celery entry points for verification. They take IDs; the database is the truth."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from kargo.times import parse_rfc3339
from stages.models import AnalysisRun, Stage

from . import actions
from .actions import latest_verification

# How late a run's next measurement may be before reconcile sends a task of its own (its own
# countdown task normally arrives on time; a worker that died with it does not). Another is sent
# only a heartbeat timeout later, so runs that are merely late (every worker busy) do not fill
# the queue with duplicates that make them later still.
OVERDUE_GRACE = timedelta(seconds=2)
# How long a Stage's verification may stay Pending without a run before reconcile starts it.
START_GRACE = timedelta(seconds=2)


@shared_task
def start_verification(stage_id: int) -> None:
    actions.do_start_verification(stage_id)


@shared_task
def measure_run(run_id: int) -> None:
    """Take the run's due measurements, one after another, and record them. Nothing is due:
    nothing to do (a duplicate task, or one that came early)."""
    taken = actions.do_take_due(run_id)
    if taken:
        secrets = actions.run_secrets(run_id)
        outcomes = [(m, started, actions.measure(m, secrets)) for m, started in taken]
        actions.do_record(run_id, outcomes)


@shared_task
def reconcile_verifications() -> None:
    """Level-triggered sweep: runs whose next measurement is overdue (their task was lost with a
    worker) and Stages whose verification waits for a run that nobody started."""
    now = timezone.now()
    resend_at = now + timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT)
    overdue = AnalysisRun.objects.filter(next_measure_at__lt=now - OVERDUE_GRACE)
    for run_id, due in overdue.values_list("id", "next_measure_at"):
        # The run's next look is pushed on as its task is sent, unless a worker moved it since it
        # was read (of two reconcilers, one sends); the task's own measurement or record sets it.
        sent = AnalysisRun.objects.filter(id=run_id, next_measure_at=due).update(
            next_measure_at=resend_at
        )
        if sent:
            measure_run.delay(run_id)
    for stage in Stage.objects.filter(spec__has_key="verification").only("id", "status"):
        info = latest_verification(stage)
        if info and info.get("phase") == "Pending" and not info.get("analysisRun"):
            started = parse_rfc3339(info.get("startTime"))
            if started is None or now - started > START_GRACE:
                start_verification.delay(stage.id)
