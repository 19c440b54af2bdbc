"""Stage: requested Freight, promotion template, verification, and status."""

from typing import Annotated, Any, Literal

from pydantic import Field

from kargo.specs.base import (
    Condition,
    DateTime,
    Duration,
    ExpressionVariable,
    FreightCollection,
    FreightOrigin,
    FreightReference,
    KargoModel,
    LabelSelector,
    Map,
    ObjectMeta,
    StatusFreightOrigin,
    StatusModel,
    StringMap,
)
from kargo.specs.promotion import PromotionStatus, TemplateStep


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
    autoPromotionHolds: Map[AutoPromotionHold] | None = None
    effectiveAutoPromotionHolds: Map[AutoPromotionHold] | None = None
    promotionWindowStatus: PromotionWindowStatus | None = None
    metadata: dict[str, Any] | None = None


class Stage(KargoModel):
    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Stage"]
    metadata: ObjectMeta
    spec: StageSpec
    status: StageStatus | None = None
