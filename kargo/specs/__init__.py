"""Validation of Kargo and Argo Rollouts manifests.

The project accepts Kargo's own YAML unchanged, so these pydantic models mirror the
CustomResourceDefinitions Kargo (kargo.akuity.io/v1alpha1) and Argo Rollouts (argoproj.io/v1alpha1)
install, field for field:

- objects are closed (``extra="forbid"``), as Kubernetes rejects unknown fields in strict mode;
- field names are the YAML (camelCase) names; only Python keywords (``if``, ``as``, ``pass``) use
  aliases;
- types are strict (no "5" for 5, no 1 for true), as the API server's schema validation is;
- enums, patterns, lengths, minItems and required fields are the CRDs'; defaults are the CRDs'
  (and, for Warehouse subscriptions, those of Kargo's subscription JSON schemas);
- the CEL rules the CRDs declare (``x-kubernetes-validations``) are model validators;
- ``null`` values are dropped before validation, as the API server prunes them;
- where the CRD keeps unknown fields (``x-kubernetes-preserve-unknown-fields``) or declares an
  object without properties, any object is accepted.

``status`` blocks are written by controllers and appear in exports, including exports from older
Kargo versions that carry since-removed fields (``status.phase``, ``health.argoCDApps``, ...). Their
known fields are type-checked, but unknown fields in a status block are ignored rather than
rejected.

Checks that Kargo or Argo Rollouts make only in admission webhooks or at run time (unique
requestedFreight origins, "exactly one metric provider", ...) are not schema rules and live with the
code that uses these objects.

Public API: :class:`FieldError`, :data:`KINDS`, :data:`CLUSTER_SCOPED`, :func:`validate_document`,
:func:`parse_document`.
"""

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kargo.errors import FieldError, field_errors, one_of
from kargo.times import is_rfc3339

KARGO_API_VERSION = "kargo.akuity.io/v1alpha1"
ROLLOUTS_API_VERSION = "argoproj.io/v1alpha1"


# --------------------------------------------------------------------------------------------------
# Base models
# --------------------------------------------------------------------------------------------------


class KargoModel(BaseModel):
    """A closed, strictly typed object, as the CRDs' structural schemas are."""

    model_config = ConfigDict(extra="forbid", strict=True, serialize_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        # The API server prunes null values of non-nullable fields before validating and
        # defaulting, so `field: null` means "not set" (the seed's `job: {metadata: null}`).
        if isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items() if value is not None}
        return data


class StatusModel(KargoModel):
    """A status object: known fields are checked, unknown ones (older Kargo versions) ignored."""

    model_config = ConfigDict(extra="ignore")


def _rule(message: str) -> PydanticCustomError:
    return PydanticCustomError("rule", message)


# --------------------------------------------------------------------------------------------------
# Constrained scalar types
# --------------------------------------------------------------------------------------------------


def _pattern(regex: str, message: str) -> AfterValidator:
    """Check a string against a CRD `pattern` (JSON Schema patterns are unanchored searches)."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise PydanticCustomError("pattern", message)
        return value

    return AfterValidator(check)


def _date_time(value: Any) -> Any:
    # Manifests are read as the API server reads them (kargo.yamlio): a timestamp is a string.
    if isinstance(value, str) and is_rfc3339(value):
        return value
    raise PydanticCustomError(
        "date_time", "must be an RFC 3339 date-time, e.g. 2024-07-15T22:13:57Z"
    )


def _int_or_string(value: Any) -> Any:
    # bool is a subclass of int in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError("int_or_string", "must be an integer or a string")
    return value


def _unique(items: list) -> list:
    # `x-kubernetes-list-type: set` lists may not repeat an item.
    if len(set(items)) != len(items):
        raise PydanticCustomError("unique", "must not contain duplicate items")
    return items


DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"
VAR_NAME = r"^[a-zA-Z_]\w*$"

_SUBDOMAIN_MESSAGE = "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')"
_LABEL_MESSAGE = "must be a lowercase RFC 1123 label (a-z, 0-9, '-')"

DateTime = Annotated[str, PlainValidator(_date_time)]
IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]
JSONObject = dict[str, Any]
NonEmptyStr = Annotated[str, Field(min_length=1)]
# A Kubernetes object name (DNS-1123 subdomain), as used for most resource names.
ResourceName = Annotated[
    str, Field(min_length=1, max_length=253), _pattern(DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE)
]
# A DNS-1123 label: namespace names, and Project names (a Project is a namespace).
LabelName = Annotated[
    str, Field(min_length=1, max_length=63), _pattern(DNS1123_LABEL, _LABEL_MESSAGE)
]
Duration = Annotated[str, _pattern(DURATION, "must be a duration such as 30s, 5m or 1h30m")]
VarName = Annotated[
    str,
    Field(min_length=1),
    _pattern(VAR_NAME, "must be an identifier (letters, digits, '_'; not starting with a digit)"),
]
StringMap = dict[str, str]


# --------------------------------------------------------------------------------------------------
# Object metadata
# --------------------------------------------------------------------------------------------------


class ObjectMeta(KargoModel):
    """metav1.ObjectMeta: the fields a manifest sets are checked; server-set ones pass as-is."""

    name: ResourceName
    namespace: LabelName | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    # Populated by the API server and present in exports; this layer does not interpret them.
    generateName: Any = None
    uid: Any = None
    resourceVersion: Any = None
    generation: Any = None
    creationTimestamp: Any = None
    deletionTimestamp: Any = None
    deletionGracePeriodSeconds: Any = None
    finalizers: Any = None
    ownerReferences: Any = None
    managedFields: Any = None
    selfLink: Any = None


class ProjectMeta(ObjectMeta):
    # A Project reconciles to a namespace of the same name, so its name must be a DNS label.
    name: LabelName


# --------------------------------------------------------------------------------------------------
# Shared Kargo types
# --------------------------------------------------------------------------------------------------


class Condition(StatusModel):
    """metav1.Condition."""

    lastTransitionTime: DateTime
    message: Annotated[str, Field(max_length=32768)]
    observedGeneration: Annotated[int, Field(ge=0)] | None = None
    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024),
        _pattern(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", "must be a CamelCase reason"),
    ]
    status: Literal["True", "False", "Unknown"]
    type: Annotated[
        str,
        Field(max_length=316),
        _pattern(
            r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            "must be a CamelCase condition type",
        ),
    ]


class LabelSelectorRequirement(KargoModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(KargoModel):
    matchExpressions: list[LabelSelectorRequirement] | None = None
    matchLabels: StringMap | None = None


class FreightOrigin(KargoModel):
    kind: Literal["Warehouse"]
    name: str


class ExpressionVariable(KargoModel):
    name: VarName
    value: str | None = None


class GitCommit(KargoModel):
    author: str | None = None
    branch: str | None = None
    committer: str | None = None
    id: str | None = None
    message: str | None = None
    repoURL: str | None = None
    subscriptionName: str | None = None
    tag: str | None = None


class Image(KargoModel):
    annotations: StringMap | None = None
    digest: str | None = None
    repoURL: str | None = None
    subscriptionName: str | None = None
    tag: str | None = None


class Chart(KargoModel):
    name: str | None = None
    repoURL: str | None = None
    subscriptionName: str | None = None
    version: str | None = None


class ArtifactReference(KargoModel):
    artifactType: NonEmptyStr | None = None
    # Kargo documents this as "a JSON object ... It may not be a list or a scalar value."
    metadata: JSONObject | None = None
    subscriptionName: NonEmptyStr
    version: NonEmptyStr


# The same shapes inside status blocks, where unknown (e.g. since-removed) fields are ignored.
class StatusFreightOrigin(FreightOrigin):
    model_config = ConfigDict(extra="ignore")


class StatusGitCommit(GitCommit):
    model_config = ConfigDict(extra="ignore")


class StatusImage(Image):
    model_config = ConfigDict(extra="ignore")


class StatusChart(Chart):
    model_config = ConfigDict(extra="ignore")


class StatusArtifactReference(ArtifactReference):
    model_config = ConfigDict(extra="ignore")
    metadata: Any = None


class FreightReference(StatusModel):
    name: str | None = None
    origin: StatusFreightOrigin | None = None
    commits: list[StatusGitCommit] | None = None
    images: list[StatusImage] | None = None
    charts: list[StatusChart] | None = None
    artifacts: list[StatusArtifactReference] | None = None


class AnalysisRunReference(StatusModel):
    name: str
    namespace: str
    phase: str


class VerificationInfo(StatusModel):
    actor: str | None = None
    analysisRun: AnalysisRunReference | None = None
    finishTime: DateTime | None = None
    id: str | None = None
    message: str | None = None
    phase: str | None = None
    startTime: DateTime | None = None


class FreightCollection(StatusModel):
    id: str
    items: dict[str, FreightReference] | None = None
    verificationHistory: list[VerificationInfo] | None = None


# --------------------------------------------------------------------------------------------------
# Promotion steps (Stage promotion templates, Promotions, PromotionTasks)
# --------------------------------------------------------------------------------------------------


class PromotionTaskReference(KargoModel):
    name: ResourceName
    kind: Literal["PromotionTask", "ClusterPromotionTask"] | None = None


class PromotionStepRetry(KargoModel):
    errorThreshold: int | None = None
    timeout: str | None = None


class PromotionStep(KargoModel):
    uses: NonEmptyStr | None = None
    task: PromotionTaskReference | None = None
    as_: str | None = Field(None, alias="as")
    if_: str | None = Field(None, alias="if")
    continueOnError: bool | None = None
    retry: PromotionStepRetry | None = None
    vars: list[ExpressionVariable] | None = None
    # Opaque here: values may be expressions, checked against each step's schema only after
    # evaluation (so older keys such as git-commit's `messageFromSteps` pass at this level).
    config: JSONObject | None = None

    def _has(self, field: str) -> bool:
        return field in self.model_fields_set


class TemplateStep(PromotionStep):
    """A step of a Stage's promotionTemplate: runs a built-in step or inflates a task."""

    @model_validator(mode="after")
    def _check_rules(self) -> "TemplateStep":
        # CEL rules of PromotionTemplateSpec.steps in the Stage CRD.
        if self._has("uses") == self._has("task"):
            raise _rule("must set exactly one of uses or task")
        if self._has("task") and self._has("continueOnError"):
            raise _rule("a step referencing a task cannot set continueOnError")
        if self._has("task") and self._has("retry"):
            raise _rule("a step referencing a task cannot set retry")
        return self


class TaskStep(PromotionStep):
    """A step of a (Cluster)PromotionTask."""

    @model_validator(mode="after")
    def _check_rules(self) -> "TaskStep":
        if not self._has("uses") or self._has("task"):
            raise _rule("must set uses and must not reference another task")
        return self


class PromotionOnlyStep(PromotionStep):
    """A step of a Promotion: tasks were already inflated when the Promotion was created."""

    @model_validator(mode="after")
    def _check_rules(self) -> "PromotionOnlyStep":
        if not self._has("uses") or self._has("task"):
            raise _rule("must set uses and must not reference a task")
        return self


class HealthCheckStep(StatusModel):
    uses: NonEmptyStr
    config: Any = None


class StepExecutionMetadata(StatusModel):
    alias: str | None = None
    continueOnError: bool | None = None
    errorCount: int | None = None
    finishedAt: DateTime | None = None
    message: str | None = None
    startedAt: DateTime | None = None
    status: str | None = None


class PromotionStatus(StatusModel):
    currentStep: int | None = None
    finishedAt: DateTime | None = None
    freight: FreightReference | None = None
    freightCollection: FreightCollection | None = None
    healthChecks: list[HealthCheckStep] | None = None
    lastHandledRefresh: str | None = None
    message: str | None = None
    phase: str | None = None
    startedAt: DateTime | None = None
    state: Any = None
    stepExecutionMetadata: list[StepExecutionMetadata] | None = None


# --------------------------------------------------------------------------------------------------
# Project and ProjectConfig
# --------------------------------------------------------------------------------------------------


class HealthStats(StatusModel):
    healthy: int | None = None


class ResourceStats(StatusModel):
    count: int | None = None
    health: HealthStats | None = None


class ProjectStats(StatusModel):
    stages: ResourceStats | None = None
    warehouses: ResourceStats | None = None


class ProjectStatus(StatusModel):
    conditions: list[Condition] | None = None
    stats: ProjectStats | None = None


class Project(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Project"]
    metadata: ProjectMeta
    # No spec since Kargo v1.5 (promotion policies moved to ProjectConfig).
    status: ProjectStatus | None = None


class DeepLink(KargoModel):
    title: NonEmptyStr
    url: NonEmptyStr
    description: str | None = None
    if_: str | None = Field(None, alias="if")


class PromotionPolicySelector(KargoModel):
    name: str | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None
    matchLabels: StringMap | None = None


class AutoRollback(KargoModel):
    # Items are plain strings in the CRD, restricted by CEL rules to these values.
    onPromotion: (
        Annotated[list[Literal["Failed", "Errored"]], Field(max_length=2), AfterValidator(_unique)]
        | None
    ) = None
    onVerification: (
        Annotated[list[Literal["Failed", "Error"]], Field(max_length=2), AfterValidator(_unique)]
        | None
    ) = None


class PromotionPolicy(KargoModel):
    stage: Annotated[str, _pattern(DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE)] | None = None
    stageSelector: PromotionPolicySelector | None = None
    autoPromotionEnabled: bool | None = None
    autoRollback: AutoRollback | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> "PromotionPolicy":
        if ("stage" in self.model_fields_set) == ("stageSelector" in self.model_fields_set):
            raise _rule("must set exactly one of stage or stageSelector")
        return self


class PromotionWindow(KargoModel):
    name: ResourceName
    kind: Literal["Allow", "Deny"]
    stageSelector: PromotionPolicySelector | None = None
    projectSelector: PromotionPolicySelector | None = None
    rrule: str | None = None
    dtstart: str | None = None
    dtend: str | None = None


class SecretReference(KargoModel):
    name: str = ""


class SecretReceiver(KargoModel):
    secretRef: SecretReference


class ArtifactoryReceiver(SecretReceiver):
    virtualRepoName: str | None = None


class IndexSelectorRequirement(KargoModel):
    key: Literal["subscribedURLs", "receiverPaths"]
    operator: str
    value: str


class IndexSelector(KargoModel):
    matchIndices: Annotated[list[IndexSelectorRequirement], Field(min_length=1)] | None = None


class TargetSelectionCriteria(KargoModel):
    kind: Literal["Warehouse"]
    name: str | None = None
    labelSelector: LabelSelector | None = None
    indexSelector: IndexSelector | None = None


class GenericWebhookAction(KargoModel):
    action: Literal["Refresh"]
    whenExpression: str | None = None
    parameters: StringMap | None = None
    targetSelectionCriteria: (
        Annotated[list[TargetSelectionCriteria], Field(min_length=1)] | None
    ) = None


class GenericReceiver(SecretReceiver):
    actions: Annotated[list[GenericWebhookAction], Field(min_length=1)] | None = None


class WebhookReceiver(KargoModel):
    name: ResourceName
    artifactory: ArtifactoryReceiver | None = None
    azure: SecretReceiver | None = None
    bitbucket: SecretReceiver | None = None
    dockerhub: SecretReceiver | None = None
    generic: GenericReceiver | None = None
    gitea: SecretReceiver | None = None
    github: SecretReceiver | None = None
    gitlab: SecretReceiver | None = None
    harbor: SecretReceiver | None = None
    quay: SecretReceiver | None = None


class ProjectConfigSpec(KargoModel):
    promotionPolicies: list[PromotionPolicy] | None = None
    promotionWindows: list[PromotionWindow] | None = None
    webhookReceivers: list[WebhookReceiver] | None = None
    freightLinks: list[DeepLink] | None = None
    stageLinks: list[DeepLink] | None = None


class WebhookReceiverDetails(StatusModel):
    name: str | None = None
    path: str | None = None
    url: str | None = None


class ProjectConfigStatus(StatusModel):
    conditions: list[Condition] | None = None
    lastHandledRefresh: str | None = None
    observedGeneration: int | None = None
    webhookReceivers: list[WebhookReceiverDetails] | None = None


class ProjectConfig(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["ProjectConfig"]
    metadata: ObjectMeta
    spec: ProjectConfigSpec | None = None
    status: ProjectConfigStatus | None = None


# --------------------------------------------------------------------------------------------------
# Warehouse
# --------------------------------------------------------------------------------------------------

# Patterns and defaults of Kargo's subscription JSON schemas (pkg/subscription/schemas/*.json).
GIT_REPO_URL = (
    r"(?:^(ssh|https?)://(?:([\w-]+)(:(.+))?@)?([\w-]+(?:\.[\w-]+)*)(?::(\d{1,5}))?(/.*)$)"
    r"|(?:^([\w-]+)@([\w+]+(?:\.[\w-]+)*):(/?.*))$"
    # Our extension to Kargo's pattern: local repositories (file:///abs/path), which a
    # single-machine setup and the demo use. Kargo's CRD refuses these.
    r"|(?:^file:///[^\s]+$)"
)
IMAGE_REPO_URL = r"^(\w+([\.-]\w+)*(:[\d]+)?/)?(\w+([\.-]\w+)*)(/\w+([\.-]\w+)*)*$"
CHART_REPO_URL = r"^(((https?)|(oci))://)(([\w\d\.\-]+)(:([\d]+)?)?(/.*)*)$"

DiscoveryLimit = Annotated[int, Field(ge=1, le=100)]


class GitSubscription(KargoModel):
    repoURL: Annotated[
        str,
        Field(min_length=1),
        _pattern(GIT_REPO_URL, "must be an https://, ssh://, user@host:path or file:/// Git URL"),
    ]
    commitSelectionStrategy: Literal["NewestFromBranch", "SemVer", "Lexical", "NewestTag"] = (
        "NewestFromBranch"
    )
    branch: (
        Annotated[
            str,
            Field(min_length=1, max_length=255),
            _pattern(r"^[a-zA-Z0-9]([a-zA-Z0-9._\/-]*[a-zA-Z0-9_-])?$", "must be a branch name"),
        ]
        | None
    ) = None
    strictSemvers: bool = True
    semverConstraint: str | None = None
    allowTags: str | None = None
    allowTagsRegexes: list[str] | None = None
    ignoreTags: list[str] | None = None
    ignoreTagsRegexes: list[str] | None = None
    expressionFilter: str | None = None
    insecureSkipTLSVerify: bool | None = None
    blobless: bool | None = None
    includePaths: list[str] | None = None
    excludePaths: list[str] | None = None
    discoveryLimit: DiscoveryLimit = 20
    since: DateTime | None = None


class ImageSubscription(KargoModel):
    repoURL: Annotated[
        str,
        Field(min_length=1),
        _pattern(IMAGE_REPO_URL, "must be an image repository without a tag"),
    ]
    imageSelectionStrategy: Literal["Digest", "Lexical", "NewestBuild", "SemVer"] = "SemVer"
    strictSemvers: bool = True
    constraint: str | None = None
    allowTags: str | None = None
    allowTagsRegexes: list[str] | None = None
    ignoreTags: list[str] | None = None
    ignoreTagsRegexes: list[str] | None = None
    platform: Annotated[str, _pattern(r"^\w+/\w+$", "must be <os>/<arch>")] | None = None
    insecureSkipTLSVerify: bool | None = None
    discoveryLimit: DiscoveryLimit = 20
    cacheByTag: bool = False


class ChartSubscription(KargoModel):
    repoURL: Annotated[
        str,
        Field(min_length=1),
        _pattern(CHART_REPO_URL, "must be an http(s):// or oci:// URL"),
    ]
    name: str | None = None
    semverConstraint: str | None = None
    discoveryLimit: DiscoveryLimit = 20
    insecureSkipTLSVerify: bool | None = None


class GenericSubscription(KargoModel):
    """A subscription handled by a pluggable subscriber; its key is the subscription type."""

    # Set from the item's key by Kargo; tolerated when written out explicitly.
    subscriptionType: NonEmptyStr | None = None
    name: NonEmptyStr | None = None
    # Kargo documents this as an object ("It may not be a list or a scalar value.").
    config: JSONObject | None = None
    discoveryLimit: DiscoveryLimit = 20


class RepoSubscription(KargoModel):
    """One subscriptions[] item: an optional `name` plus exactly one type key.

    `git`, `image` and `chart` are the built-in types; any other key is a generic subscription of
    that type (Kargo's WarehouseSpec.UnmarshalJSON).
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, GenericSubscription] = Field(init=False)

    name: LabelName | None = None
    git: GitSubscription | None = None
    image: ImageSubscription | None = None
    chart: ChartSubscription | None = None

    @model_validator(mode="after")
    def _exactly_one_type(self) -> "RepoSubscription":
        types = [key for key in ("git", "image", "chart") if key in self.model_fields_set]
        types += list(self.model_extra or {})
        if len(types) != 1:
            raise _rule("must have exactly one subscription type (git, image, chart or other)")
        return self


class FreightCreationCriteria(KargoModel):
    expression: str | None = None


class WarehouseSpec(KargoModel):
    shard: str | None = None
    interval: Duration = "5m0s"
    freightCreationPolicy: Literal["Automatic", "Manual"] = "Automatic"
    freightCreationCriteria: FreightCreationCriteria | None = None
    subscriptions: Annotated[list[RepoSubscription], Field(min_length=1)]


class DiscoveredCommit(StatusModel):
    author: str | None = None
    branch: str | None = None
    committer: str | None = None
    creatorDate: DateTime | None = None
    id: NonEmptyStr | None = None
    subject: str | None = None
    tag: str | None = None


class DiscoveredRef(StatusModel):
    id: NonEmptyStr
    name: NonEmptyStr


class ObservedRefs(StatusModel):
    branchHead: str | None = None
    tags: list[DiscoveredRef] | None = None


class GitDiscoveryResult(StatusModel):
    # The Warehouse CRD's status pattern has no trailing `$` on its scp-style alternative.
    repoURL: Annotated[
        str,
        Field(min_length=1),
        _pattern(
            r"(?:^(ssh|https?)://(?:([\w-]+)(:(.+))?@)?([\w-]+(?:\.[\w-]+)*)(?::(\d{1,5}))?(/.*)$)"
            r"|(?:^([\w-]+)@([\w+]+(?:\.[\w-]+)*):(/?.*))",
            "must be an https://, ssh:// or user@host:path Git URL",
        ),
    ]
    subscriptionName: str | None = None
    commits: list[DiscoveredCommit] | None = None
    observedRefs: ObservedRefs | None = None


class DiscoveredImageReference(StatusModel):
    annotations: StringMap | None = None
    createdAt: DateTime | None = None
    digest: Annotated[
        str, Field(min_length=1), _pattern(r"^[a-z0-9]+:[a-f0-9]+$", "must be a digest")
    ]
    tag: Annotated[
        str,
        Field(min_length=1, max_length=128),
        _pattern(r"^[\w.\-\_]+$", "must be an image tag"),
    ]


class ImageDiscoveryResult(StatusModel):
    repoURL: NonEmptyStr
    platform: str | None = None
    subscriptionName: str | None = None
    references: list[DiscoveredImageReference] | None = None


class ChartDiscoveryResult(StatusModel):
    repoURL: NonEmptyStr
    name: str | None = None
    semverConstraint: str | None = None
    subscriptionName: str | None = None
    versions: list[str] | None = None


class DiscoveryResult(StatusModel):
    name: NonEmptyStr
    artifactReferences: list[StatusArtifactReference] | None = None


class DiscoveredArtifacts(StatusModel):
    discoveredAt: DateTime | None = None
    git: list[GitDiscoveryResult] | None = None
    images: list[ImageDiscoveryResult] | None = None
    charts: list[ChartDiscoveryResult] | None = None
    results: list[DiscoveryResult] | None = None


class WarehouseStatus(StatusModel):
    conditions: list[Condition] | None = None
    discoveredArtifacts: DiscoveredArtifacts | None = None
    lastFreightID: str | None = None
    lastHandledRefresh: str | None = None
    observedGeneration: int | None = None


class Warehouse(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Warehouse"]
    metadata: ObjectMeta
    spec: WarehouseSpec
    status: WarehouseStatus | None = None


# --------------------------------------------------------------------------------------------------
# Freight
# --------------------------------------------------------------------------------------------------


class ApprovedStage(StatusModel):
    approvedAt: DateTime | None = None


class CurrentStage(StatusModel):
    since: DateTime | None = None


class VerifiedStage(StatusModel):
    longestSoak: str | None = None
    verifiedAt: DateTime | None = None


class FreightStatus(StatusModel):
    approvedFor: dict[str, ApprovedStage] | None = None
    currentlyIn: dict[str, CurrentStage] | None = None
    verifiedIn: dict[str, VerifiedStage] | None = None
    metadata: dict[str, Any] | None = None


class Freight(KargoModel):
    """Freight has no spec: its artifact fields are top-level."""

    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Freight"]
    metadata: ObjectMeta
    alias: str | None = None
    origin: FreightOrigin
    commits: list[GitCommit] | None = None
    images: list[Image] | None = None
    charts: list[Chart] | None = None
    artifacts: list[ArtifactReference] | None = None
    discoveredAt: DateTime | None = None
    status: FreightStatus | None = None


# --------------------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------------------


class AutoPromotionOptions(KargoModel):
    selectionPolicy: Literal["NewestFreight", "MatchUpstream"] | None = None


class FreightSources(KargoModel):
    direct: bool | None = None
    stages: list[str] | None = None
    requiredSoakTime: Duration | None = None
    availabilityStrategy: Literal["All", "OneOf", ""] | None = None
    autoPromotionOptions: AutoPromotionOptions | None = None


class FreightRequest(KargoModel):
    origin: FreightOrigin
    sources: FreightSources


class PromotionTemplateSpec(KargoModel):
    vars: list[ExpressionVariable] | None = None
    steps: Annotated[list[TemplateStep], Field(min_length=1)] | None = None


class PromotionTemplate(KargoModel):
    spec: PromotionTemplateSpec


class AnalysisTemplateReference(KargoModel):
    name: str
    kind: Literal["AnalysisTemplate", "ClusterAnalysisTemplate"] | None = None


class AnalysisRunMetadata(KargoModel):
    labels: StringMap | None = None
    annotations: StringMap | None = None


class AnalysisRunArgument(KargoModel):
    name: str
    value: str


class Verification(KargoModel):
    analysisTemplates: list[AnalysisTemplateReference] | None = None
    analysisRunMetadata: AnalysisRunMetadata | None = None
    args: list[AnalysisRunArgument] | None = None


class StageTargets(KargoModel):
    selectors: list[LabelSelector]


class StageSpec(KargoModel):
    shard: str | None = None
    vars: list[ExpressionVariable] | None = None
    requestedFreight: Annotated[list[FreightRequest], Field(min_length=1)]
    promotionTemplate: PromotionTemplate | None = None
    verification: Verification | None = None
    targets: StageTargets | None = None

    @property
    def upstream_names(self) -> list[str]:
        """The Stages this one takes Freight from, each once, in the order written."""
        names: list[str] = []
        for request in self.requestedFreight:
            for upstream in request.sources.stages or []:
                if upstream not in names:
                    names.append(upstream)
        return names

    @property
    def warehouse_names(self) -> list[str]:
        """The Warehouses this Stage takes Freight from directly."""
        return [r.origin.name for r in self.requestedFreight if r.sources.direct]

    def request_for(self, origin_name: str) -> "FreightRequest | None":
        return next((r for r in self.requestedFreight if r.origin.name == origin_name), None)

    @property
    def steps(self) -> list["TemplateStep"]:
        template = self.promotionTemplate
        return (template.spec.steps or []) if template else []


class AutoPromotionHold(StatusModel):
    freightName: str
    origin: StatusFreightOrigin
    promotionName: str | None = None
    actor: str | None = None
    createdAt: DateTime | None = None


class PromotionReference(StatusModel):
    name: str
    freight: FreightReference | None = None
    status: PromotionStatus | None = None
    finishedAt: DateTime | None = None


class FreightNameReference(StatusModel):
    name: str


class PromotionRequestReference(StatusModel):
    name: str
    freight: FreightNameReference | None = None
    phase: str | None = None
    finishedAt: DateTime | None = None


class Health(StatusModel):
    status: str | None = None
    issues: list[str] | None = None
    config: Any = None
    output: Any = None


class PromotionWindowStatus(StatusModel):
    closed: bool
    reason: str | None = None
    nextOpen: DateTime | None = None
    nextClose: DateTime | None = None
    nextCloseReason: str | None = None


class StageStatus(StatusModel):
    conditions: list[Condition] | None = None
    lastHandledRefresh: str | None = None
    observedGeneration: int | None = None
    freightHistory: list[FreightCollection] | None = None
    freightSummary: str | None = None
    health: Health | None = None
    currentPromotion: PromotionReference | None = None
    lastPromotion: PromotionReference | None = None
    currentPromotionRequest: PromotionRequestReference | None = None
    lastPromotionRequest: PromotionRequestReference | None = None
    autoPromotionEnabled: bool | None = None
    autoPromotionHolds: dict[str, AutoPromotionHold] | None = None
    effectiveAutoPromotionHolds: dict[str, AutoPromotionHold] | None = None
    promotionWindowStatus: PromotionWindowStatus | None = None
    metadata: dict[str, Any] | None = None


class Stage(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Stage"]
    metadata: ObjectMeta
    spec: StageSpec
    status: StageStatus | None = None


# --------------------------------------------------------------------------------------------------
# Promotion, PromotionTask, ClusterPromotionTask
# --------------------------------------------------------------------------------------------------


class PromotionSpec(KargoModel):
    stage: ResourceName
    freight: ResourceName | None = None
    origin: FreightOrigin | None = None
    target: (
        Annotated[str, Field(max_length=253), _pattern(DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE)]
        | None
    ) = None
    vars: list[ExpressionVariable] | None = None
    steps: Annotated[list[PromotionOnlyStep], Field(min_length=1)]

    @model_validator(mode="after")
    def _check_rules(self) -> "PromotionSpec":
        if ("freight" in self.model_fields_set) == ("origin" in self.model_fields_set):
            raise _rule("exactly one of freight or origin must be set")
        return self


class Promotion(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Promotion"]
    metadata: ObjectMeta
    spec: PromotionSpec
    status: PromotionStatus | None = None


class PromotionTaskSpec(KargoModel):
    # A var without a value is an input the referencing step must supply.
    vars: list[ExpressionVariable] | None = None
    steps: Annotated[list[TaskStep], Field(min_length=1)]


class PromotionTask(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["PromotionTask"]
    metadata: ObjectMeta
    spec: PromotionTaskSpec


class ClusterPromotionTask(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["ClusterPromotionTask"]
    metadata: ObjectMeta
    spec: PromotionTaskSpec


# --------------------------------------------------------------------------------------------------
# Argo Rollouts: AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun
# --------------------------------------------------------------------------------------------------


class FieldRef(KargoModel):
    fieldPath: str


class SecretKeyRef(KargoModel):
    name: str
    key: str


class ValueFrom(KargoModel):
    secretKeyRef: SecretKeyRef | None = None
    fieldRef: FieldRef | None = None


class Argument(KargoModel):
    # An argument without a value is required input (from Kargo's verification.args).
    name: str
    value: str | None = None
    valueFrom: ValueFrom | None = None


class DryRun(KargoModel):
    metricName: str


class MeasurementRetention(KargoModel):
    metricName: str
    limit: int


class TemplateRef(KargoModel):
    templateName: str | None = None
    clusterScope: bool | None = None


class WebMetricHeader(KargoModel):
    key: str
    value: str


class BasicAuth(KargoModel):
    username: str | None = None
    password: str | None = None


class OAuth2Config(KargoModel):
    tokenUrl: str | None = None
    clientId: str | None = None
    clientSecret: str | None = None
    scopes: list[str] | None = None


class Sigv4Config(KargoModel):
    region: str | None = None
    profile: str | None = None
    roleArn: str | None = None


class Authentication(KargoModel):
    basicAuth: BasicAuth | None = None
    oauth2: OAuth2Config | None = None
    sigv4: Sigv4Config | None = None


class WebMetric(KargoModel):
    url: str
    method: str | None = None
    headers: list[WebMetricHeader] | None = None
    body: str | None = None
    jsonBody: JSONObject | None = None
    timeoutSeconds: int | None = None
    jsonPath: str | None = None
    insecure: bool | None = None
    authentication: Authentication | None = None


class PrometheusRangeQuery(KargoModel):
    start: str | None = None
    end: str | None = None
    step: str | None = None


class PrometheusMetric(KargoModel):
    address: str | None = None
    query: str | None = None
    timeout: int | None = None
    insecure: bool | None = None
    headers: list[WebMetricHeader] | None = None
    authentication: Authentication | None = None
    rangeQuery: PrometheusRangeQuery | None = None


class DatadogSecretRef(KargoModel):
    name: str | None = None
    namespaced: bool | None = None


class DatadogMetric(KargoModel):
    apiVersion: Literal["v1", "v2"] = "v1"
    interval: str = "5m"
    requestTimeout: str = "10s"
    query: str | None = None
    queries: StringMap | None = None
    formula: str | None = None
    aggregator: (
        Literal["avg", "min", "max", "sum", "last", "percentile", "mean", "l2norm", "area"] | None
    ) = None
    secretRef: DatadogSecretRef | None = None


class CloudWatchDimension(KargoModel):
    name: str | None = None
    value: str | None = None


class CloudWatchMetricStatMetric(KargoModel):
    dimensions: list[CloudWatchDimension] | None = None
    metricName: str | None = None
    namespace: str | None = None


class CloudWatchMetricStat(KargoModel):
    metric: CloudWatchMetricStatMetric | None = None
    period: IntOrString | None = None
    stat: str | None = None
    unit: str | None = None


class CloudWatchMetricDataQuery(KargoModel):
    id: str | None = None
    expression: str | None = None
    label: str | None = None
    metricStat: CloudWatchMetricStat | None = None
    period: IntOrString | None = None
    returnData: bool | None = None


class CloudWatchMetric(KargoModel):
    interval: str | None = None
    metricDataQueries: list[CloudWatchMetricDataQuery]


class AddressQueryMetric(KargoModel):
    """Graphite and Wavefront."""

    address: str | None = None
    query: str | None = None


class InfluxdbMetric(KargoModel):
    profile: str | None = None
    query: str | None = None


class SkyWalkingMetric(KargoModel):
    address: str | None = None
    query: str | None = None
    interval: str | None = None


class NewRelicMetric(KargoModel):
    query: str
    profile: str | None = None
    timeout: int | None = None


class KayentaScopeDetail(KargoModel):
    scope: str
    region: str
    step: int
    start: str | None = None
    end: str | None = None


class KayentaScope(KargoModel):
    name: str
    controlScope: KayentaScopeDetail
    experimentScope: KayentaScopeDetail


class KayentaThreshold(KargoModel):
    pass_: int = Field(alias="pass")
    marginal: int


class KayentaMetric(KargoModel):
    address: str
    application: str
    canaryConfigName: str
    metricsAccountName: str
    configurationAccountName: str
    storageAccountName: str
    threshold: KayentaThreshold
    scopes: list[KayentaScope]
    lookback: bool | None = None


# The job provider embeds a batch/v1 JobSpec. Its top levels (JobSpec, PodSpec, Container) and
# the container fields most templates use (env, envFrom, ports, volumeMounts, resources) are
# closed here; deeper Kubernetes structures (affinity, probes, securityContext, volumes, ...) are
# accepted as objects and left to the API server that receives the Job.


class KeySelector(KargoModel):
    """ConfigMapKeySelector / SecretKeySelector."""

    key: str
    name: str = ""
    optional: bool | None = None


class ObjectFieldSelector(KargoModel):
    fieldPath: str
    apiVersion: str | None = None


class ResourceFieldSelector(KargoModel):
    resource: str
    containerName: str | None = None
    divisor: IntOrString | None = None


class FileKeySelector(KargoModel):
    key: str
    path: str
    volumeName: str
    optional: bool = False


class EnvVarSource(KargoModel):
    configMapKeyRef: KeySelector | None = None
    secretKeyRef: KeySelector | None = None
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None
    fileKeyRef: FileKeySelector | None = None


class EnvVar(KargoModel):
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class SourceReference(KargoModel):
    name: str = ""
    optional: bool | None = None


class EnvFromSource(KargoModel):
    configMapRef: SourceReference | None = None
    secretRef: SourceReference | None = None
    prefix: str | None = None


class ContainerPort(KargoModel):
    containerPort: int
    name: str | None = None
    protocol: str = "TCP"
    hostIP: str | None = None
    hostPort: int | None = None


class VolumeMount(KargoModel):
    name: str
    mountPath: str
    mountPropagation: str | None = None
    readOnly: bool | None = None
    recursiveReadOnly: str | None = None
    subPath: str | None = None
    subPathExpr: str | None = None


class ResourceRequirements(KargoModel):
    # Quantities may be written as numbers (cpu: 1) or strings (memory: 64Mi).
    limits: JSONObject | None = None
    requests: JSONObject | None = None
    claims: list[JSONObject] | None = None


class Container(KargoModel):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    env: list[EnvVar] | None = None
    envFrom: list[EnvFromSource] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    resizePolicy: list[JSONObject] | None = None
    restartPolicy: str | None = None
    restartPolicyRules: list[JSONObject] | None = None
    volumeMounts: list[VolumeMount] | None = None
    volumeDevices: list[JSONObject] | None = None
    livenessProbe: JSONObject | None = None
    readinessProbe: JSONObject | None = None
    startupProbe: JSONObject | None = None
    lifecycle: JSONObject | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None
    imagePullPolicy: str | None = None
    securityContext: JSONObject | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    tty: bool | None = None


class PodSpec(KargoModel):
    containers: list[Container]
    initContainers: list[Container] | None = None
    ephemeralContainers: list[JSONObject] | None = None
    volumes: Any = None
    restartPolicy: str | None = None
    terminationGracePeriodSeconds: int | None = None
    activeDeadlineSeconds: int | None = None
    dnsPolicy: str | None = None
    dnsConfig: JSONObject | None = None
    nodeSelector: StringMap | None = None
    nodeName: str | None = None
    serviceAccountName: str | None = None
    serviceAccount: str | None = None
    automountServiceAccountToken: bool | None = None
    hostNetwork: bool | None = None
    hostPID: bool | None = None
    hostIPC: bool | None = None
    hostUsers: bool | None = None
    shareProcessNamespace: bool | None = None
    securityContext: JSONObject | None = None
    imagePullSecrets: list[JSONObject] | None = None
    hostname: str | None = None
    hostnameOverride: str | None = None
    subdomain: str | None = None
    setHostnameAsFQDN: bool | None = None
    affinity: JSONObject | None = None
    schedulerName: str | None = None
    tolerations: list[JSONObject] | None = None
    hostAliases: list[JSONObject] | None = None
    priorityClassName: str | None = None
    priority: int | None = None
    preemptionPolicy: str | None = None
    readinessGates: list[JSONObject] | None = None
    runtimeClassName: str | None = None
    enableServiceLinks: bool | None = None
    overhead: JSONObject | None = None
    topologySpreadConstraints: list[JSONObject] | None = None
    os: JSONObject | None = None
    schedulingGates: list[JSONObject] | None = None
    resourceClaims: list[JSONObject] | None = None
    resources: JSONObject | None = None


class TemplateMetadata(KargoModel):
    labels: StringMap | None = None
    annotations: StringMap | None = None


class PodTemplateSpec(KargoModel):
    metadata: TemplateMetadata | None = None
    spec: PodSpec | None = None


class JobSpec(KargoModel):
    template: PodTemplateSpec
    parallelism: int | None = None
    completions: int | None = None
    activeDeadlineSeconds: int | None = None
    backoffLimit: int | None = None
    backoffLimitPerIndex: int | None = None
    maxFailedIndexes: int | None = None
    completionMode: str | None = None
    podFailurePolicy: JSONObject | None = None
    successPolicy: JSONObject | None = None
    podReplacementPolicy: str | None = None
    selector: LabelSelector | None = None
    manualSelector: bool | None = None
    suspend: bool | None = None
    ttlSecondsAfterFinished: int | None = None
    managedBy: str | None = None


class JobMetric(KargoModel):
    metadata: TemplateMetadata | None = None
    spec: JobSpec


class MetricProvider(KargoModel):
    web: WebMetric | None = None
    prometheus: PrometheusMetric | None = None
    job: JobMetric | None = None
    datadog: DatadogMetric | None = None
    newRelic: NewRelicMetric | None = None
    cloudWatch: CloudWatchMetric | None = None
    graphite: AddressQueryMetric | None = None
    influxdb: InfluxdbMetric | None = None
    kayenta: KayentaMetric | None = None
    skywalking: SkyWalkingMetric | None = None
    wavefront: AddressQueryMetric | None = None
    # Plugin providers are configured by the plugin: any object.
    plugin: JSONObject | None = None


class Metric(KargoModel):
    name: str
    provider: MetricProvider
    interval: str | None = None
    initialDelay: str | None = None
    count: IntOrString | None = None
    successCondition: str | None = None
    failureCondition: str | None = None
    failureLimit: IntOrString | None = None
    inconclusiveLimit: IntOrString | None = None
    consecutiveErrorLimit: IntOrString | None = None
    consecutiveSuccessLimit: IntOrString | None = None


class AnalysisTemplateSpec(KargoModel):
    metrics: list[Metric] | None = None
    args: list[Argument] | None = None
    dryRun: list[DryRun] | None = None
    measurementRetention: list[MeasurementRetention] | None = None
    templates: list[TemplateRef] | None = None


class AnalysisTemplate(KargoModel):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["AnalysisTemplate"]
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


class ClusterAnalysisTemplate(KargoModel):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["ClusterAnalysisTemplate"]
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


class TTLStrategy(KargoModel):
    secondsAfterCompletion: int | None = None
    secondsAfterFailure: int | None = None
    secondsAfterSuccess: int | None = None


class AnalysisRunSpec(KargoModel):
    metrics: list[Metric]
    args: list[Argument] | None = None
    terminate: bool | None = None
    dryRun: list[DryRun] | None = None
    measurementRetention: list[MeasurementRetention] | None = None
    ttlStrategy: TTLStrategy | None = None


class Measurement(StatusModel):
    phase: str
    message: str | None = None
    startedAt: DateTime | None = None
    finishedAt: DateTime | None = None
    resumeAt: DateTime | None = None
    value: str | None = None
    metadata: StringMap | None = None


class MetricResult(StatusModel):
    name: str
    phase: str
    measurements: list[Measurement] | None = None
    message: str | None = None
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None
    consecutiveError: int | None = None
    consecutiveSuccess: int | None = None
    dryRun: bool | None = None
    metadata: StringMap | None = None


class RunSummary(StatusModel):
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None


class AnalysisRunStatus(StatusModel):
    phase: str
    message: str | None = None
    metricResults: list[MetricResult] | None = None
    startedAt: DateTime | None = None
    completedAt: DateTime | None = None
    runSummary: RunSummary | None = None
    dryRunSummary: RunSummary | None = None


class AnalysisRun(KargoModel):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["AnalysisRun"]
    metadata: ObjectMeta
    spec: AnalysisRunSpec
    status: AnalysisRunStatus | None = None


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind this project accepts: its API group version, its typed model, its scope and the
    names `kargo get` accepts for it (as kubectl's plural and short names)."""

    name: str
    api_version: str
    model: type[KargoModel]
    cluster_scoped: bool = False
    aliases: tuple[str, ...] = ()


# The one registry of kinds, in apply order: what others refer to comes first.
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("Project", KARGO_API_VERSION, Project, True, ("projects",)),
        Kind("ProjectConfig", KARGO_API_VERSION, ProjectConfig, False, ("projectconfigs",)),
        Kind("Warehouse", KARGO_API_VERSION, Warehouse, False, ("warehouses",)),
        Kind("Freight", KARGO_API_VERSION, Freight),
        Kind("Stage", KARGO_API_VERSION, Stage, False, ("stages",)),
        Kind("Promotion", KARGO_API_VERSION, Promotion, False, ("promotions", "promo", "promos")),
        Kind(
            "PromotionTask",
            KARGO_API_VERSION,
            PromotionTask,
            False,
            ("promotiontasks", "promotask"),
        ),
        Kind(
            "ClusterPromotionTask",
            KARGO_API_VERSION,
            ClusterPromotionTask,
            True,
            ("clusterpromotiontasks", "clusterpromotask"),
        ),
        Kind(
            "AnalysisTemplate",
            ROLLOUTS_API_VERSION,
            AnalysisTemplate,
            False,
            ("analysistemplates",),
        ),
        Kind(
            "ClusterAnalysisTemplate",
            ROLLOUTS_API_VERSION,
            ClusterAnalysisTemplate,
            True,
            ("clusteranalysistemplates",),
        ),
        Kind("AnalysisRun", ROLLOUTS_API_VERSION, AnalysisRun, False, ("analysisruns",)),
    )
}

CLUSTER_SCOPED: set[str] = {name for name, kind in KINDS.items() if kind.cluster_scoped}

_BY_ALIAS = {name.lower(): name for name in KINDS} | {
    alias: name for name, kind in KINDS.items() for alias in kind.aliases
}


def resolve_kind(text: str) -> Kind | None:
    """The kind a user means by `Stage`, `stages`, `promo`, ... (case-insensitive), or None."""
    name = _BY_ALIAS.get(text.lower())
    return KINDS[name] if name else None


class SchemaError(ValueError):
    """Raised by :func:`parse_document`; ``errors`` holds the :class:`FieldError` list."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("invalid document: " + "; ".join(str(error) for error in errors))


def _check_type_fields(doc: dict) -> list[FieldError]:
    """Check apiVersion and kind, which decide which model validates the rest."""
    api_versions = sorted({kind.api_version for kind in KINDS.values()})
    errors = []
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    if api_version is None:
        errors.append(FieldError("apiVersion", "field required"))
    elif not isinstance(api_version, str):
        errors.append(FieldError("apiVersion", "must be a string"))
    elif api_version not in api_versions:
        errors.append(FieldError("apiVersion", one_of(api_versions)))
    if kind is None:
        errors.append(FieldError("kind", "field required"))
    elif not isinstance(kind, str):
        errors.append(FieldError("kind", "must be a string"))
    elif not errors and (kind not in KINDS or KINDS[kind].api_version != api_version):
        kinds = [name for name, known in KINDS.items() if known.api_version == api_version]
        errors.append(FieldError("kind", f"{one_of(kinds)} for apiVersion {api_version}"))
    return errors


def _validate(doc: Any) -> tuple[BaseModel | None, list[FieldError]]:
    if not isinstance(doc, dict):
        return None, [
            FieldError("apiVersion", "document must be an object with apiVersion and kind")
        ]
    errors = _check_type_fields(doc)
    if errors:
        return None, errors
    try:
        return KINDS[doc["kind"]].model.model_validate(doc), []
    except ValidationError as exc:
        return None, field_errors(exc)


def dump(model: BaseModel | None) -> dict:
    """A typed object as JSON in Kargo's field names: defaults filled, unset fields left out
    (free-form content, such as a step's config, is kept exactly as written)."""
    if model is None:
        return {}
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def validate_document(doc: Any) -> list[FieldError]:
    """Validate one manifest; return its errors, or [] when Kargo would accept it."""
    return _validate(doc)[1]


def parse_document(doc: dict):
    """Validate one manifest and return its model instance; raise SchemaError if invalid."""
    instance, errors = _validate(doc)
    if errors:
        raise SchemaError(errors)
    return instance
