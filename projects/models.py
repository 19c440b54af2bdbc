"""Projects, their configuration, who may do what in them, and the audit trail.

Every Kargo resource is stored the way Kargo stores it: a name, labels, annotations, the spec as
the user applied it (validated, camelCase, JSON) and a status in Kargo's shape. Columns beside the
JSON exist only where the dashboard filters or orders by them.
"""

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from pydantic import BaseModel

from kargo import specs


class Resource(models.Model):
    name = models.CharField(max_length=253)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    spec = models.JSONField(default=dict, blank=True)
    status = models.JSONField(default=dict, blank=True)
    generation = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The typed model of `spec` (kargo.specs), with Kargo's defaults; None where the spec is free.
    spec_type: ClassVar[type[BaseModel] | None] = None

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # A partial save still moves updated_at: the page caches what it rendered of a row by
        # (id, updated_at) (stages.fragments), so every change must show there.
        fields = kwargs.get("update_fields")
        if fields is not None and "updated_at" not in fields:
            kwargs["update_fields"] = [*fields, "updated_at"]
        super().save(*args, **kwargs)

    @property
    def typed_spec(self) -> Any:
        """`spec` as its typed model. Parsed once per loaded spec: assigning a new spec (or
        reloading the row) parses again."""
        cached = self.__dict__.get("_typed_spec")
        if cached is None or cached[0] is not self.spec:
            cached = (self.spec, self.spec_type.model_validate(self.spec))
            self.__dict__["_typed_spec"] = cached
        return cached[1]


class Project(Resource):
    name = models.CharField(max_length=63, unique=True)

    class Meta:
        ordering = ["name"]


class ProjectScoped(models.Model):
    """Belongs to one Project and is named uniquely within it (a namespaced Kubernetes object).
    Reverse accessors are the plural model name: project.stages, project.warehouses, ..."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="%(class)ss")

    class Meta:
        abstract = True
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"], name="%(app_label)s_%(class)s_name_per_project"
            )
        ]


class ClusterScoped(models.Model):
    """Named uniquely in the whole installation (a cluster-scoped Kubernetes object)."""

    name = models.CharField(max_length=253, unique=True)

    class Meta:
        abstract = True
        ordering = ["name"]


class ProjectConfig(Resource):
    spec_type = specs.ProjectConfigSpec

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="config")


class Role(models.TextChoices):
    # Kargo's three project roles, in increasing power.
    VIEWER = "viewer", "Viewer"
    PROMOTER = "promoter", "Promoter"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.PROMOTER: 2, Role.ADMIN: 3}


def higher_role(*roles: str) -> str:
    """The most powerful of `roles` ("" stands for none; "" if all are none)."""
    return max((r for r in roles if r), key=ROLE_RANK.__getitem__, default="")


class Membership(models.Model):
    """A user's role in a project. It has two sources, as a Kargo user bound to several
    ServiceAccounts has the union of their rights: a grant by hand (`kargo grant --user`, the
    admin) and the role the user's SSO claims map to (RoleClaim, system admins and viewers;
    recomputed at every SSO login by projects.oidc). `role`, which every access check reads, is
    the higher of the two, so taking a claim mapping away never takes away a grant by hand."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    granted_role = models.CharField(
        max_length=16, choices=Role.choices, blank=True, help_text="granted by hand"
    )
    claims_role = models.CharField(
        max_length=16,
        choices=Role.choices,
        blank=True,
        help_text="from the user's SSO claims at their last login",
    )

    SOURCES = frozenset({"granted_role", "claims_role"})

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.project}"

    def save(self, *args, **kwargs):
        """Derive `role` from its sources. Code that knows only `role` (a new row with neither
        source, or an update that names `role` alone, as actions.do_set_membership's
        update_or_create does) is granting it by hand."""
        fields = kwargs.get("update_fields")
        if fields is not None:
            fields = set(fields)
        if (fields is not None and "role" in fields and not fields & self.SOURCES) or (
            fields is None and self._state.adding and not self.granted_role and not self.claims_role
        ):
            self.granted_role = self.role
            if fields is not None:
                fields.add("granted_role")
        self.role = higher_role(self.granted_role, self.claims_role) or self.role
        if fields is not None:
            kwargs["update_fields"] = fields | {"role"}
        super().save(*args, **kwargs)


class RoleClaim(models.Model):
    """Kargo's `rbac.kargo.akuity.io/claims` annotation on a project role's ServiceAccount, one
    value a row: an SSO user whose claim `claim` is `value` (or, for a list claim such as
    `groups`, holds it) gets `role` in `project` (projects.oidc). Managed with `manage.py kargo
    grant|revoke --role R --claim NAME=VALUE` and in the admin."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="role_claims")
    role = models.CharField(max_length=16, choices=Role.choices)
    claim = models.CharField(max_length=100, help_text="a claim name: sub, email, groups, ...")
    value = models.CharField(max_length=253)

    class Meta:
        ordering = ["project", "role", "claim", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "role", "claim", "value"], name="one_role_claim_per_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.claim}={self.value} is {self.role} in {self.project}"


class SsoIdentity(models.Model):
    """Who a user is at the OIDC provider (issuer and subject, which never change, unlike an
    email), and the claims it gave at their last login: what their claims roles are computed
    from when a claim mapping changes between logins."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    claims = models.JSONField(default=dict, blank=True)
    last_login_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SSO identity"
        verbose_name_plural = "SSO identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_sso_subject")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class Surface(models.TextChoices):
    # Where a change came from (projects.audit sets it for the request, command or task).
    BROWSER = "browser", "Browser"
    API = "api", "API"
    CLI = "cli", "CLI"
    CONTROLLER = "controller", "Controller"
    WEBHOOK = "webhook", "Webhook"


class Event(models.Model):
    """Audit trail: who did what, in Kargo's event vocabulary (PromotionCreated, FreightApproved, ...),
    from which surface and address, and the changed fields before and after where that applies."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events", null=True)
    reason = models.CharField(max_length=64)
    actor = models.CharField(max_length=200)
    message = models.TextField()
    involved = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    surface = models.CharField(max_length=16, choices=Surface.choices, default=Surface.CONTROLLER)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The audit page lists one project's events newest first, filtered by reason, actor or
        # surface: each index serves one filter and the whole order (ties broken by id), so a
        # page reads 51 index entries and sorts nothing.
        indexes = [
            models.Index(fields=["project", "-created_at", "-id"], name="event_project_newest"),
            models.Index(
                fields=["project", "reason", "-created_at", "-id"],
                name="event_project_reason_newest",
            ),
            models.Index(
                fields=["project", "actor", "-created_at", "-id"], name="event_project_actor_newest"
            ),
            models.Index(
                fields=["project", "surface", "-created_at", "-id"],
                name="event_project_surface_newest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class ApiToken(models.Model):
    """A bearer token for the JSON API, bound to one project and one role (Kargo's API tokens
    are ServiceAccount tokens of a project role). Only a digest of the secret is stored: the
    token is shown once, when it is created. Deleting the row revokes it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=63)
    role = models.CharField(max_length=16, choices=Role.choices)
    # The public half of the token, to find the row without comparing secrets in SQL.
    key_id = models.CharField(max_length=16, unique=True)
    # SHA-256 (hex) of the secret half; compared in constant time (projects.tokens).
    digest = models.CharField(max_length=64)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="one_token_name_per_project")
        ]

    def __str__(self) -> str:
        return f"token {self.name} ({self.role}) in {self.project}"


class CredType(models.TextChoices):
    # Kargo's kargo.akuity.io/cred-type label values.
    GIT = "git", "Git"
    HELM = "helm", "Helm"
    IMAGE = "image", "Image"
    GENERIC = "generic", "Generic"


class Credential(models.Model):
    """A Kargo credential Secret (label kargo.akuity.io/cred-type): a project's own, or shared by
    every project when `project` is NULL (Kargo's kargo-shared-resources namespace). Its data is
    stored only encrypted (`sealed`, a Fernet token of the JSON data: projects.credentials); the
    repository URL beside it, in clear, is what matching and listings read. `keys` names the data
    keys so a listing can show `key: ***` without decrypting anything."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="credentials"
    )
    name = models.CharField(max_length=253)
    cred_type = models.CharField(max_length=16, choices=CredType.choices)
    repo_url = models.CharField(max_length=2048, blank=True)
    repo_url_is_regex = models.BooleanField(default=False)
    keys = models.JSONField(default=list, blank=True)
    sealed = models.TextField()
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(project__isnull=False),
                name="one_credential_name_per_project",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(project__isnull=True),
                name="one_shared_credential_name",
            ),
        ]

    def __str__(self) -> str:
        return f"credential {self.name} ({self.cred_type})"


class ConfigMap(models.Model):
    """A Kubernetes ConfigMap for `configMap()` (project) and `sharedConfigMap()` (`project`
    NULL) in expressions. Plain data, not secret."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="config_maps"
    )
    name = models.CharField(max_length=253)
    data = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(project__isnull=False),
                name="one_config_map_name_per_project",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(project__isnull=True),
                name="one_shared_config_map_name",
            ),
        ]

    def __str__(self) -> str:
        return f"configmap {self.name}"
