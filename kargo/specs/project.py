"""Project and ProjectConfig: a tenant, and its promotion policies, promotion windows, webhook
receivers and deep links.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from kargo.specs.base import (
    DNS1123_SUBDOMAIN,
    SUBDOMAIN_MESSAGE,
    Condition,
    KargoModel,
    LabelName,
    LabelSelector,
    LabelSelectorRequirement,
    NonEmptyStr,
    ObjectMeta,
    ResourceName,
    StatusModel,
    StringMap,
    pattern,
    rule_violation,
)


class ProjectMeta(ObjectMeta):
    # A Project reconciles to a namespace of the same name, so its name must be a DNS label.
    name: LabelName


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


def _unique(items: list) -> list:
    # `x-kubernetes-list-type: set` lists may not repeat an item.
    if len(set(items)) != len(items):
        raise PydanticCustomError("unique", "must not contain duplicate items")
    return items


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
    stage: Annotated[str, pattern(DNS1123_SUBDOMAIN, SUBDOMAIN_MESSAGE)] | None = None
    stageSelector: PromotionPolicySelector | None = None
    autoPromotionEnabled: bool | None = None
    autoRollback: AutoRollback | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> "PromotionPolicy":
        if ("stage" in self.model_fields_set) == ("stageSelector" in self.model_fields_set):
            raise rule_violation("must set exactly one of stage or stageSelector")
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
