"""fail: end the promotion Failed, with an optional message (Kargo's failer.go)."""

from __future__ import annotations

from pydantic import Field

from .base import Step, StepContext, StepModel, StepResult, register


class FailConfig(StepModel):
    # Optional fields default to None but are typed without it: an explicit null is refused,
    # as Kargo's schema refuses it.
    message: str = Field(None, min_length=1)


@register
class FailStep(Step):
    name = "fail"
    Config = FailConfig

    def run(self, ctx: StepContext, config: FailConfig) -> StepResult:
        message = f"failed: {config.message}" if config.message else "failed"
        return StepResult(status="Failed", message=message)
