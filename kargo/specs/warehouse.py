"""Warehouse: artifact subscriptions, and the status of their discovery."""

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from kargo.regex import RegexError, compile_regex
from kargo.specs.base import (
    Condition,
    DateTime,
    Duration,
    JSONObject,
    KargoModel,
    LabelName,
    NonEmptyStr,
    ObjectMeta,
    StatusArtifactReference,
    StatusModel,
    StringMap,
    pattern,
    rule_violation,
)
from kargo.versions import Constraint

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


def _regex(value: str) -> str:
    # Kargo compiles these when it discovers (Go's regexp, which RE2 matches); refusing a bad
    # one here names its field at apply instead of failing every discovery.
    try:
        compile_regex(value)
    except RegexError as exc:
        raise PydanticCustomError("regex", str(exc)) from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


def _constraint(value: str) -> str:
    # Refused at apply with its field path, rather than at every discovery.
    try:
        Constraint(value)
    except ValueError as exc:
        raise PydanticCustomError("semver_constraint", str(exc)) from None
    return value


SemverConstraint = Annotated[str, AfterValidator(_constraint)]


class GitSubscription(KargoModel):
    repoURL: Annotated[
        str,
        Field(min_length=1),
        pattern(GIT_REPO_URL, "must be an https://, ssh://, user@host:path or file:/// Git URL"),
    ]
    commitSelectionStrategy: Literal["NewestFromBranch", "SemVer", "Lexical", "NewestTag"] = (
        "NewestFromBranch"
    )
    branch: (
        Annotated[
            str,
            Field(min_length=1, max_length=255),
            pattern(r"^[a-zA-Z0-9]([a-zA-Z0-9._\/-]*[a-zA-Z0-9_-])?$", "must be a branch name"),
        ]
        | None
    ) = None
    strictSemvers: bool = True
    semverConstraint: SemverConstraint | None = None
    allowTags: str | None = None
    allowTagsRegexes: list[Regex] | None = None
    ignoreTags: list[str] | None = None
    ignoreTagsRegexes: list[Regex] | None = None
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
        pattern(IMAGE_REPO_URL, "must be an image repository without a tag"),
    ]
    imageSelectionStrategy: Literal["Digest", "Lexical", "NewestBuild", "SemVer"] = "SemVer"
    strictSemvers: bool = True
    constraint: str | None = None
    allowTags: str | None = None
    allowTagsRegexes: list[Regex] | None = None
    ignoreTags: list[str] | None = None
    ignoreTagsRegexes: list[Regex] | None = None
    platform: Annotated[str, pattern(r"^\w+/\w+$", "must be <os>/<arch>")] | None = None
    insecureSkipTLSVerify: bool | None = None
    discoveryLimit: DiscoveryLimit = 20
    cacheByTag: bool = False

    @model_validator(mode="after")
    def _digest_names_a_tag(self) -> "ImageSubscription":
        # Kargo's admission webhook (pkg/subscription/image.go ValidateSubscription).
        if self.imageSelectionStrategy == "Digest" and not self.constraint:
            raise rule_violation(
                "constraint: must name the tag to follow when imageSelectionStrategy is Digest"
            )
        if self.imageSelectionStrategy == "SemVer" and self.constraint:
            try:
                Constraint(self.constraint)
            except ValueError as exc:
                raise rule_violation(f"constraint: {exc}") from None
        return self


class ChartSubscription(KargoModel):
    repoURL: Annotated[
        str,
        Field(min_length=1),
        pattern(CHART_REPO_URL, "must be an http(s):// or oci:// URL"),
    ]
    name: str | None = None
    semverConstraint: SemverConstraint | None = None
    discoveryLimit: DiscoveryLimit = 20
    insecureSkipTLSVerify: bool | None = None

    @model_validator(mode="after")
    def _name_fits_the_repository(self) -> "ChartSubscription":
        # Kargo's admission webhook (pkg/subscription/chart.go ValidateSubscription).
        if self.repoURL.startswith("oci://") and self.name:
            raise rule_violation("name: must be empty if repoURL starts with oci://")
        if self.repoURL.startswith(("http://", "https://")) and not self.name:
            raise rule_violation(
                "name: must be non-empty if repoURL starts with http:// or https://"
            )
        return self


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
            raise rule_violation(
                "must have exactly one subscription type (git, image, chart or other)"
            )
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
        pattern(
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
        str, Field(min_length=1), pattern(r"^[a-z0-9]+:[a-f0-9]+$", "must be a digest")
    ]
    tag: Annotated[
        str,
        Field(min_length=1, max_length=128),
        pattern(r"^[\w.\-\_]+$", "must be an image tag"),
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
