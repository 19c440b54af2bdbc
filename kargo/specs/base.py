"""The building blocks every kind's models share: base models, constrained scalars, ObjectMeta,
Condition, and the Kargo types several kinds embed (FreightOrigin, artifacts, FreightReference).

The project accepts Kargo's own YAML unchanged, so the pydantic models of kargo.specs mirror the
CustomResourceDefinitions Kargo (kargo.akuity.io/v1alpha1) and Argo Rollouts (argoproj.io/v1alpha1)
install, field for field:

- objects are closed (``extra="forbid"``), as Kubernetes rejects unknown fields in strict mode;
- field names are the YAML (camelCase) names; only Python keywords (``if``, ``as``, ``pass``) use
  aliases;
- types are strict (no "5" for 5, no 1 for true), as the API server's schema validation is;
- enums, patterns, lengths, minItems and required fields are the CRDs'; defaults are the CRDs'
  (and, for Warehouse subscriptions, those of Kargo's subscription JSON schemas);
- the CEL rules the CRDs declare (``x-kubernetes-validations``) are model validators;
- ``null`` values are dropped before validation, as the API server prunes them: a field set to
  null is unset, and a null value in a map (``labels: {team: null}``) is no entry;
- where the CRD keeps unknown fields (``x-kubernetes-preserve-unknown-fields``) or declares an
  object without properties, any object is accepted.

``status`` blocks are written by controllers and appear in exports, including exports from older
Kargo versions that carry since-removed fields (``status.phase``, ``health.argoCDApps``, ...). Their
known fields are type-checked, but unknown fields in a status block are ignored rather than
rejected.

Checks that Kargo or Argo Rollouts make only in admission webhooks or at run time (unique
requestedFreight origins, "exactly one metric provider", ...) are not schema rules and live with the
code that uses these objects.
"""

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kargo.regex import compile_regex
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


def rule_violation(message: str) -> PydanticCustomError:
    return PydanticCustomError("rule", message)


# --------------------------------------------------------------------------------------------------
# Constrained scalar types
# --------------------------------------------------------------------------------------------------


def pattern(regex: str, message: str) -> AfterValidator:
    """Check a string against a CRD `pattern` (JSON Schema patterns are unanchored searches). RE2,
    as the API server's Go regexp: `$` is the end of the text, not also before a final newline."""
    compiled = compile_regex(regex)

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


def _without_null_values(value: Any) -> Any:
    # The API server prunes null map values as it prunes null fields, so `team: null` in a label
    # map means no `team` label, not an error.
    if isinstance(value, dict) and None in value.values():
        return {key: item for key, item in value.items() if item is not None}
    return value


def _int_or_string(value: Any) -> Any:
    # bool is a subclass of int in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError("int_or_string", "must be an integer or a string")
    return value


DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"
VAR_NAME = r"^[a-zA-Z_]\w*$"

SUBDOMAIN_MESSAGE = "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')"
_LABEL_MESSAGE = "must be a lowercase RFC 1123 label (a-z, 0-9, '-')"

DateTime = Annotated[str, PlainValidator(_date_time)]
IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]
JSONObject = dict[str, Any]
NonEmptyStr = Annotated[str, Field(min_length=1)]
# A Kubernetes object name (DNS-1123 subdomain), as used for most resource names.
ResourceName = Annotated[
    str, Field(min_length=1, max_length=253), pattern(DNS1123_SUBDOMAIN, SUBDOMAIN_MESSAGE)
]
# A DNS-1123 label: namespace names, and Project names (a Project is a namespace).
LabelName = Annotated[
    str, Field(min_length=1, max_length=63), pattern(DNS1123_LABEL, _LABEL_MESSAGE)
]
Duration = Annotated[str, pattern(DURATION, "must be a duration such as 30s, 5m or 1h30m")]
VarName = Annotated[
    str,
    Field(min_length=1),
    pattern(VAR_NAME, "must be an identifier (letters, digits, '_'; not starting with a digit)"),
]

_MapValue = TypeVar("_MapValue")
# A CRD map (`additionalProperties`): string keys, values of one type, null values dropped.
Map = Annotated[dict[str, _MapValue], BeforeValidator(_without_null_values)]
StringMap = Map[str]


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
        pattern(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", "must be a CamelCase reason"),
    ]
    status: Literal["True", "False", "Unknown"]
    type: Annotated[
        str,
        Field(max_length=316),
        pattern(
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
    items: Map[FreightReference] | None = None
    verificationHistory: list[VerificationInfo] | None = None
