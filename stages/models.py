from django.db import models

from kargo import specs
from projects.models import ClusterScoped, ProjectScoped, Resource


class Stage(ProjectScoped, Resource):
    spec_type = specs.StageSpec

    @property
    def upstream_names(self) -> list[str]:
        return self.typed_spec.upstream_names

    @property
    def warehouse_names(self) -> list[str]:
        return self.typed_spec.warehouse_names

    @property
    def steps(self) -> list[dict]:
        """The promotion template's steps as applied (what the pages list and count)."""
        return ((self.spec.get("promotionTemplate") or {}).get("spec") or {}).get("steps") or []


class PromotionPhase(models.TextChoices):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERRORED = "Errored"
    ABORTED = "Aborted"


TERMINAL_PHASES = {
    PromotionPhase.SUCCEEDED,
    PromotionPhase.FAILED,
    PromotionPhase.ERRORED,
    PromotionPhase.ABORTED,
}


class Promotion(ProjectScoped, Resource):
    spec_type = specs.PromotionSpec
    # Names embed a ULID, so name order (ProjectScoped's ordering) is creation order: Kargo's FIFO.
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="promotions")
    freight_name = models.CharField(max_length=64)
    phase = models.CharField(
        max_length=16, choices=PromotionPhase.choices, default=PromotionPhase.PENDING, db_index=True
    )
    message = models.TextField(blank=True)
    actor = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written by the worker running the promotion; a stale value means the worker is gone. While
    # nobody has claimed the run, it is when the run was handed to a worker (NULL: not yet).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The claim token of the worker that owns the run ("" while nobody does). Every write of a run
    # (heartbeat, step progress, finish) is conditional on it, so a worker that was thought dead
    # and comes back cannot write over the run that took its place.
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    # How many times a run whose worker stopped was resumed (settings.PROMOTION_MAX_RESUMES at most).
    resumes = models.PositiveSmallIntegerField(default=0)

    class Meta(ProjectScoped.Meta):
        # A Stage's promotions newest first (its drawer: name order is creation order); its queue
        # in creation order, the head first (stages.actions.do_start_next, the pending reason);
        # a project's open promotions (the pipeline's cards). Each index carries its list's
        # order, so nothing is sorted but the handful of open promotions
        # (tests/integration/test_query_plans.py).
        indexes = [
            models.Index(fields=["stage", "-name"], name="promotion_stage_newest"),
            models.Index(
                fields=["stage", "phase", "created_at", "id"], name="promotion_stage_queue"
            ),
            models.Index(fields=["project", "phase"], name="promotion_project_phase"),
        ]

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


class PromotionTask(ProjectScoped, Resource):
    spec_type = specs.PromotionTaskSpec


class ClusterPromotionTask(ClusterScoped, Resource):
    spec_type = specs.PromotionTaskSpec


class AnalysisTemplate(ProjectScoped, Resource):
    spec_type = specs.AnalysisTemplateSpec


class ClusterAnalysisTemplate(ClusterScoped, Resource):
    spec_type = specs.AnalysisTemplateSpec


class AnalysisRun(ProjectScoped, Resource):
    spec_type = specs.AnalysisRunSpec
    stage = models.ForeignKey(
        Stage, on_delete=models.SET_NULL, null=True, blank=True, related_name="analysis_runs"
    )
    # When the run next needs a worker: its next measurement's due time, or, while measurements
    # are in flight, when they are taken as lost. NULL once the run has completed. The periodic
    # reconcile sends a task for every run past it (verification.tasks.reconcile_verifications).
    next_measure_at = models.DateTimeField(null=True, blank=True, db_index=True)
