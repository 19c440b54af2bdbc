from django.db import models, transaction
from django.db.models import F

from kargo import specs
from projects.models import Project, ProjectScoped, Resource


class Warehouse(ProjectScoped, Resource):
    spec_type = specs.WarehouseSpec
    # Set by a refresh request and cleared by the discovery that handled it (Kargo's refresh annotation).
    refresh_requested_at = models.DateTimeField(null=True, blank=True)
    last_discovery_at = models.DateTimeField(null=True, blank=True)
    # A lease: set by the worker that runs discovery, so the periodic reconcile does not start
    # the same discovery again while one is in progress.
    discovery_started_at = models.DateTimeField(null=True, blank=True)


class Freight(ProjectScoped):
    """Immutable bundle of artifact versions; only alias and status ever change."""

    name = models.CharField(max_length=64)  # Kargo's content hash
    alias = models.CharField(max_length=128)
    origin_kind = models.CharField(max_length=32, default="Warehouse")
    origin_name = models.CharField(max_length=253)
    commits = models.JSONField(default=list, blank=True)
    images = models.JSONField(default=list, blank=True)
    charts = models.JSONField(default=list, blank=True)
    artifacts = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    # Kargo's FreightStatus: currentlyIn, verifiedIn, approvedFor, metadata.
    status = models.JSONField(default=dict, blank=True)
    discovered_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ProjectScoped.Meta):
        ordering = ["-discovered_at", "-name"]
        constraints = [
            *ProjectScoped.Meta.constraints,
            models.UniqueConstraint(fields=["project", "alias"], name="freight_alias_per_project"),
        ]
        # Pages read Freight newest first (this ordering) within a project: the timeline and
        # its keyset pages, and within one Warehouse too (what a Stage may take, promotion by
        # origin). Each index carries the whole order, so a page reads its rows off the index
        # and sorts nothing, however much Freight the project holds
        # (tests/integration/test_query_plans.py).
        indexes = [
            models.Index(fields=["project", "-discovered_at", "-name"], name="freight_timeline"),
            models.Index(
                fields=["project", "origin_name", "-discovered_at", "-name"],
                name="freight_origin_timeline",
            ),
        ]

    def __str__(self) -> str:
        return self.alias or self.name

    def save(self, *args, **kwargs):
        if not self._state.adding:
            return super().save(*args, **kwargs)
        with transaction.atomic():
            super().save(*args, **kwargs)
            FreightCount.add(self.project_id, 1)

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            deleted, by_model = super().delete(*args, **kwargs)
            if by_model.get(self._meta.label):
                FreightCount.add(self.project_id, -by_model[self._meta.label])
        return deleted, by_model

    @property
    def origin(self) -> dict:
        return {"kind": self.origin_kind, "name": self.origin_name}

    def reference(self) -> dict:
        """Kargo's FreightReference: what a Stage's freightHistory and a Promotion record."""
        ref = {"name": self.name, "origin": self.origin}
        for key in ("commits", "images", "charts", "artifacts"):
            if getattr(self, key):
                ref[key] = getattr(self, key)
        return ref


class FreightCount(models.Model):
    """How much Freight a project holds, so the timeline's "N total" is read, not counted
    (freight.queries.freight_total). Freight.save (of new Freight) and Freight.delete move it in
    their own transaction, whichever code creates or deletes Freight: do_create_freight (and so
    discovery and `apply`), `kargo delete freight`. bulk_create and QuerySet.delete bypass it, as
    they bypass save and delete; deleting the project deletes it with the Freight."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="freight_count"
    )
    total = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.total} Freight in {self.project_id}"

    @classmethod
    def add(cls, project_id: int, delta: int) -> None:
        """Move a project's count by `delta`, in the caller's transaction (a row lock until it
        ends: a project's Freight changes one transaction at a time). A project without a count
        yet gets one from its rows, the caller's change included."""
        counter = cls.objects.filter(project_id=project_id)
        if counter.update(total=F("total") + delta):
            return
        _, created = cls.objects.get_or_create(
            project_id=project_id,
            defaults={"total": Freight.objects.filter(project_id=project_id).count()},
        )
        if not created:
            # Another transaction created it first, counting rows without ours (not committed).
            counter.update(total=F("total") + delta)


class ImageMetadata(models.Model):
    """What a registry said about one tag of an image repository (freight.discovery.image): its
    digest, build date, annotations and, for an index, each platform's. A repeated poll reads
    tags it has seen from here instead of asking the registry for their manifests and config
    blobs again. Kept per project, as the credentials that read it are; rows of tags that left
    the repository are dropped by the next poll that lists it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    repository = models.CharField(max_length=512)  # registry host and path, e.g. ghcr.io/a/b
    tag = models.CharField(max_length=128)
    digest = models.CharField(max_length=80)
    created_at = models.DateTimeField(null=True, blank=True)  # the image's build date
    annotations = models.JSONField(default=dict, blank=True)
    # [{os, arch, variant, createdAt, annotations}]: an index's platforms, or a plain image's own.
    platforms = models.JSONField(default=list, blank=True)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "repository", "tag"], name="image_metadata_per_tag"
            )
        ]
        # A mutable tag that moved may point to a digest another tag already has.
        indexes = [
            models.Index(fields=["project", "repository", "digest"], name="image_metadata_digest")
        ]

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"
