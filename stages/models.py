from django.db import models

from kargo_ui.models import Project, Resource


class Stage(Resource):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="stages")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="stage_name_per_project")
        ]

    @property
    def upstream_names(self) -> list[str]:
        names = []
        for request in self.spec.get("requestedFreight", []):
            for upstream in request.get("sources", {}).get("stages", []) or []:
                if upstream not in names:
                    names.append(upstream)
        return names

    @property
    def warehouse_names(self) -> list[str]:
        return [
            r["origin"]["name"]
            for r in self.spec.get("requestedFreight", [])
            if r.get("sources", {}).get("direct")
        ]

    @property
    def steps(self) -> list[dict]:
        return self.spec.get("promotionTemplate", {}).get("spec", {}).get("steps", []) or []


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


class Promotion(Resource):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotions")
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="promotions")
    freight_name = models.CharField(max_length=64)
    phase = models.CharField(
        max_length=16, choices=PromotionPhase.choices, default=PromotionPhase.PENDING, db_index=True
    )
    message = models.TextField(blank=True)
    actor = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written by the worker running the promotion; a stale value means the worker is gone.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Names embed a ULID, so name order is creation order (Kargo's FIFO).
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="promotion_name_per_project")
        ]

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


class PromotionTask(Resource):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotion_tasks")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"], name="promotiontask_name_per_project"
            )
        ]


class ClusterPromotionTask(Resource):
    name = models.CharField(max_length=253, unique=True)


class AnalysisTemplate(Resource):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="analysis_templates"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"], name="analysistemplate_name_per_project"
            )
        ]


class ClusterAnalysisTemplate(Resource):
    name = models.CharField(max_length=253, unique=True)


class AnalysisRun(Resource):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="analysis_runs")
    stage = models.ForeignKey(
        Stage, on_delete=models.SET_NULL, null=True, blank=True, related_name="analysis_runs"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="analysisrun_name_per_project")
        ]
