"""compose-output: publish its (expression-evaluated) config as its outputs.

Used to rename or combine earlier outputs, and as the last step of a
PromotionTask to expose the task's outputs (``outputs.<taskAlias>.<key>``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from .base import Step, StepContext, StepResult, register


class ComposeOutputConfig(RootModel[dict[str, Any]]):
    # Any keys and values; the JSON schema only demands at least one key.
    root: dict[str, Any] = Field(min_length=1)


@register
class ComposeOutput(Step):
    name = "compose-output"
    Config = ComposeOutputConfig

    def run(self, ctx: StepContext, config: ComposeOutputConfig) -> StepResult:
        return StepResult(outputs=dict(config.root))
