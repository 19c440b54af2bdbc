"""set-metadata: set keys of Freight and Stage metadata (Kargo's metadata_setter.go), kept where
Kargo keeps them: Freight status.metadata and Stage status.metadata. Writes go through
freight.actions.do_set_freight_metadata and stages.actions.do_set_stage_metadata (each a
transaction, broadcast on commit); all updates of one step land together or not at all.

Also the expression functions that read them back: freightMetadata(name[, key]) and
stageMetadata(name[, key]) give the whole map (nil when the resource or its metadata is missing)
or, with a key, that key's value (nil when absent). Kargo's take only the name; the key form is
the older documented one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from django.db import transaction
from pydantic import Field

from freight.actions import do_set_freight_metadata
from freight.models import Freight
from kargo.expressions import ExpressionError

from .. import actions
from ..models import Stage
from .base import Step, StepContext, StepError, StepModel, StepResult, register


class MetadataUpdate(StepModel):
    kind: Literal["Stage", "Freight"]
    name: str = Field(min_length=1)
    values: dict[str, Any] = Field(min_length=1)


class SetMetadataConfig(StepModel):
    updates: list[MetadataUpdate] = Field(min_length=1)


MODELS = {"Stage": Stage, "Freight": Freight}


@register
class SetMetadataStep(Step):
    name = "set-metadata"
    Config = SetMetadataConfig

    def run(self, ctx: StepContext, config: SetMetadataConfig) -> StepResult:
        with transaction.atomic():
            for update in config.updates:
                if "" in update.values:
                    raise StepError(
                        f"error updating metadata for {update.kind} {update.name!r}: "
                        "key must not be empty"
                    )
                found = (
                    MODELS[update.kind]
                    .objects.filter(project_id=ctx.project_id, name=update.name)
                    .first()
                )
                if found is None:
                    raise StepError(
                        f"error getting {update.kind}: {update.name!r} not found in project "
                        f"{ctx.project!r}"
                    )
                if update.kind == "Stage":
                    actions.do_set_stage_metadata(found, update.values)
                else:
                    do_set_freight_metadata(found, update.values)
        return StepResult()


def metadata_function(kind: str, project_id: int) -> Callable[..., Any]:
    """freightMetadata / stageMetadata for a project's expressions; reads at call time, so a
    set-metadata step earlier in the same promotion is seen."""
    label = "freightMetadata" if kind == "Freight" else "stageMetadata"

    def read(name: Any, key: Any = None) -> Any:
        if not isinstance(name, str):
            raise ExpressionError(f"{label}(): first argument must be string")
        if not name:
            raise ExpressionError(f"{label}(): {kind.lower()} name must not be empty")
        if key is not None and not isinstance(key, str):
            raise ExpressionError(f"{label}(): key must be string")
        status = (
            MODELS[kind]
            .objects.filter(project_id=project_id, name=name)
            .values_list("status", flat=True)
            .first()
        )
        metadata = (status or {}).get("metadata") or None
        if key is None or metadata is None:
            return metadata
        return metadata.get(key)

    return read
