"""yaml-parse: read a YAML file (its first document) and publish values from it, one output
per ``outputs[].name``, each the value of its ``fromExpression`` (expr-lang, with the document
as environment). Read as kargo.yamlio reads manifests (YAML 1.1 scalars, budgets)."""

from __future__ import annotations

from kargo import yamlio

from ._parse import ParseConfig, extract
from .base import Step, StepContext, StepError, StepResult, register


class YAMLParseConfig(ParseConfig):
    pass


@register
class YAMLParse(Step):
    name = "yaml-parse"
    Config = YAMLParseConfig

    def run(self, ctx: StepContext, config: YAMLParseConfig) -> StepResult:
        path = ctx.path(config.path)
        if not path.is_file():
            raise StepError(f"{config.path}: no such file")
        try:
            data = yamlio.load(ctx.read_text(path))
        except ValueError as exc:
            raise StepError(f"could not parse YAML file {config.path}: {exc}") from None
        return StepResult(outputs=extract(data, config.outputs))
