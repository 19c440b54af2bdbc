"""set-freight-alias: give a Freight of the project a new alias (Kargo's set_freight_alias.go),
through freight.actions.do_update_alias (one transaction, broadcast on commit). A missing
Freight, or an alias other Freight holds, fails the step with the reason."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from pydantic import Field

from freight.actions import FreightError, do_update_alias
from freight.models import Freight

from .base import Step, StepContext, StepModel, StepResult, register


class SetFreightAliasConfig(StepModel):
    name: str = Field(min_length=1)
    alias: str = Field(min_length=1)


@register
class SetFreightAliasStep(Step):
    name = "set-freight-alias"
    Config = SetFreightAliasConfig

    def run(self, ctx: StepContext, config: SetFreightAliasConfig) -> StepResult:
        freight = Freight.objects.filter(project_id=ctx.project_id, name=config.name).first()
        if freight is None:
            return StepResult(
                status="Failed",
                message=f"freight {config.name!r} not found in project {ctx.project!r}",
            )
        old = freight.alias
        try:
            with transaction.atomic():
                do_update_alias(freight, config.alias, ctx.actor)
        except FreightError as exc:
            return StepResult(
                status="Failed", message=f"cannot set the alias of Freight {config.name!r}: {exc}"
            )
        except IntegrityError:  # taken by another writer since the check
            return StepResult(
                status="Failed",
                message=f"cannot set the alias of Freight {config.name!r}: alias "
                f"{config.alias!r} is already used by other Freight",
            )
        return StepResult(
            message=f"updated alias of Freight {config.name!r} from {old!r} to {config.alias!r}"
        )
