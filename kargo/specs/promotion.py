"""Promotion steps, and the kinds that run them: Promotion, PromotionTask and ClusterPromotionTask.

A Stage's promotion template holds the same steps (TemplateStep), so stage.py builds on this module.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kargo.specs.base import (
    DNS1123_SUBDOMAIN,
    SUBDOMAIN_MESSAGE,
    DateTime,
    ExpressionVariable,
    FreightCollection,
    FreightOrigin,
    FreightReference,
    JSONObject,
    KargoModel,
    NonEmptyStr,
    ObjectMeta,
    ResourceName,
    StatusModel,
    pattern,
    rule_violation,
)

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
            raise rule_violation("must set exactly one of uses or task")
        if self._has("task") and self._has("continueOnError"):
            raise rule_violation("a step referencing a task cannot set continueOnError")
        if self._has("task") and self._has("retry"):
            raise rule_violation("a step referencing a task cannot set retry")
        return self


class TaskStep(PromotionStep):
    """A step of a (Cluster)PromotionTask."""

    @model_validator(mode="after")
    def _check_rules(self) -> "TaskStep":
        if not self._has("uses") or self._has("task"):
            raise rule_violation("must set uses and must not reference another task")
        return self


class PromotionOnlyStep(PromotionStep):
    """A step of a Promotion: tasks were already inflated when the Promotion was created."""

    @model_validator(mode="after")
    def _check_rules(self) -> "PromotionOnlyStep":
        if not self._has("uses") or self._has("task"):
            raise rule_violation("must set uses and must not reference a task")
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
# Promotion, PromotionTask, ClusterPromotionTask
# --------------------------------------------------------------------------------------------------


class PromotionSpec(KargoModel):
    stage: ResourceName
    freight: ResourceName | None = None
    origin: FreightOrigin | None = None
    target: (
        Annotated[str, Field(max_length=253), pattern(DNS1123_SUBDOMAIN, SUBDOMAIN_MESSAGE)] | None
    ) = None
    vars: list[ExpressionVariable] | None = None
    steps: Annotated[list[PromotionOnlyStep], Field(min_length=1)]

    @model_validator(mode="after")
    def _check_rules(self) -> "PromotionSpec":
        if ("freight" in self.model_fields_set) == ("origin" in self.model_fields_set):
            raise rule_violation("exactly one of freight or origin must be set")
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
