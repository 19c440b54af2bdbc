"""Thin Celery entry points. They take IDs; the database is the truth and a task is a nudge."""

import logging

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from freight.actions import discovery_due
from freight.models import Warehouse
from freight.tasks import discover_warehouse

from . import engine
from .actions import do_handle_refresh, do_start_next
from .models import Promotion, PromotionPhase

log = logging.getLogger(__name__)


@shared_task
def start_next_promotion(stage_id: int) -> None:
    promotion = do_start_next(stage_id)
    if promotion is not None:
        run_promotion.delay(promotion.id)


@shared_task
def run_promotion(promotion_id: int) -> None:
    engine.run(promotion_id)


@shared_task
def refresh_stage(stage_id: int) -> None:
    do_handle_refresh(stage_id)
    start_next_promotion.delay(stage_id)


@shared_task
def reconcile() -> None:
    """Level-triggered sweep: finds work that no task picked up. A Promotion created by the CLI in
    another process, a task lost with a dead worker, a worker that died mid-step (its promotion
    is resumed), a Warehouse whose discovery interval elapsed: each is found here within a few
    seconds."""
    now = timezone.now()
    engine.recover_lost(now)
    # Running but held by no worker: the run task was lost before a worker took it (a new run
    # never handed out within the timeout, or a resumed one handed out longer ago than that).
    cutoff = now - timezone.timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT)
    for promotion_id in Promotion.objects.filter(
        Q(heartbeat_at__isnull=True, started_at__lt=cutoff) | Q(heartbeat_at__lt=cutoff),
        phase=PromotionPhase.RUNNING,
        claimed_by="",
    ).values_list("id", flat=True):
        # Stamp the hand-off, so the next sweep waits another timeout before sending it again.
        Promotion.objects.filter(id=promotion_id, claimed_by="").update(heartbeat_at=now)
        run_promotion.delay(promotion_id)
    waiting = (
        Promotion.objects.filter(phase=PromotionPhase.PENDING)
        .exclude(stage__promotions__phase=PromotionPhase.RUNNING)
        .order_by()  # without the default ordering, DISTINCT is over stage_id alone
        .values_list("stage_id", flat=True)
        .distinct()
    )
    for stage_id in waiting:
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
