"""Thin Celery entry points. They take IDs; the database is the truth and a task is a nudge."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from freight.actions import discovery_due
from freight.models import Warehouse
from freight.tasks import discover_warehouse

from . import autopromotion, engine
from .actions import do_auto_promote, do_handle_refresh
from .models import Promotion, PromotionPhase, Stage

log = logging.getLogger(__name__)

# How long a Stage's next promotion may wait before reconcile sends a start task of its own (its
# first came when it was created, or when the promotion before it ended): a start task normally
# reaches a worker in milliseconds. Another is sent only a heartbeat timeout later, so a queue
# that is merely long (every worker busy) does not fill up with them.
START_GRACE = timedelta(seconds=5)


@shared_task
def start_next_promotion(stage_id: int) -> None:
    engine.start_next(stage_id)


@shared_task
def resume_promotion(promotion_id: int) -> None:
    engine.resume(promotion_id)


@shared_task
def refresh_stage(stage_id: int) -> None:
    do_handle_refresh(stage_id)
    engine.start_next(stage_id)


@shared_task
def auto_promote(project_id: int) -> None:
    """A nudge: new Freight, or Freight newly verified, may be a Stage's candidate now."""
    do_auto_promote(project_id)


def heads_waiting(since, resend) -> list[tuple[int, int]]:
    """(Stage id, its next promotion's id) for each Stage with a Pending promotion and none
    Running, whose next promotion has waited since before `since` (since it was created, or since
    the Stage's last promotion ended) and was not sent a start task by reconcile after `resend`."""
    stage = OuterRef("pk")
    pending = Promotion.objects.filter(stage=stage, phase=PromotionPhase.PENDING)
    head = pending.order_by("created_at", "id")
    last_finished = (
        Promotion.objects.filter(stage=stage, finished_at__isnull=False)
        .order_by("-finished_at")
        .values("finished_at")[:1]
    )
    head_created = Subquery(head.values("created_at")[:1])
    return list(
        Stage.objects.filter(Exists(pending))
        .exclude(Exists(Promotion.objects.filter(stage=stage, phase=PromotionPhase.RUNNING)))
        .annotate(
            head_id=Subquery(head.values("id")[:1]),
            head_sent=Subquery(head.values("heartbeat_at")[:1]),
            waiting_since=Greatest(head_created, Coalesce(Subquery(last_finished), head_created)),
        )
        .filter(Q(head_sent__isnull=True) | Q(head_sent__lt=resend), waiting_since__lt=since)
        .values_list("id", "head_id")
    )


@shared_task
def reconcile() -> None:
    """Level-triggered sweep: finds work that no task picked up. A promotion whose start task was
    lost (a wake sent while no server listened, a worker killed before it claimed the promotion),
    a worker that died mid-step (its promotion is resumed), a Warehouse whose discovery interval
    elapsed, a Stage's auto-promotion candidate (stages.autopromotion): each is found here
    within a few seconds."""
    now = timezone.now()
    engine.recover_lost(now)
    resend = now - timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT)
    for stage_id, head_id in heads_waiting(now - START_GRACE, resend):
        # A Pending promotion's heartbeat_at is when a start task was last sent for it: stamped
        # first (of two reconcilers, one sends), so the next sweeps wait before sending again.
        sent = (
            Promotion.objects.filter(id=head_id, phase=PromotionPhase.PENDING)
            .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=resend))
            .update(heartbeat_at=now)
        )
        if sent:
            start_next_promotion.delay(stage_id)
    for warehouse in Warehouse.objects.only(
        "id",
        "spec",
        "status",
        "generation",
        "last_discovery_at",
        "refresh_requested_at",
        "discovery_started_at",
    ):
        if discovery_due(warehouse, now):
            discover_warehouse.delay(warehouse.id)
    # Level-triggered auto-promotion: one query when no project has promotion policies.
    for project_id in autopromotion.projects_to_reconcile():
        do_auto_promote(project_id)
