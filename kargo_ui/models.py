"""Projects, their configuration, who may do what in them, and the audit trail.

Every Kargo resource is stored the way Kargo stores it: a name, labels, annotations, the spec as
the user applied it (validated, camelCase, JSON) and a status in Kargo's shape. Columns beside the
JSON exist only where the dashboard filters or orders by them.
"""

from django.conf import settings
from django.db import models


class Resource(models.Model):
    name = models.CharField(max_length=253)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    spec = models.JSONField(default=dict, blank=True)
    status = models.JSONField(default=dict, blank=True)
    generation = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class Project(Resource):
    name = models.CharField(max_length=63, unique=True)

    class Meta:
        ordering = ["name"]


class ProjectConfig(Resource):
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="config")


class Role(models.TextChoices):
    # Kargo's three project roles, in increasing power.
    VIEWER = "viewer", "Viewer"
    PROMOTER = "promoter", "Promoter"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.PROMOTER: 2, Role.ADMIN: 3}


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.project}"


class Event(models.Model):
    """Audit trail: who did what, in Kargo's event vocabulary (PromotionCreated, FreightApproved, ...)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events", null=True)
    reason = models.CharField(max_length=64)
    actor = models.CharField(max_length=200)
    message = models.TextField()
    involved = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
