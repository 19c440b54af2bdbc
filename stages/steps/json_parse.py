"""json-parse: read a JSON file and publish values from it, one output per ``outputs[].name``,
each the value of its ``fromExpression`` (expr-lang, with the document as environment)."""

from __future__ import annotations

from kargo import jsonio

from ._parse import ParseConfig, extract
from .base import Step, StepContext, StepError, StepResult, register

MAX_BYTES = 10 * 1024 * 1024


class JSONParseConfig(ParseConfig):
    pass


@register
class JSONParse(Step):
    name = "json-parse"
    Config = JSONParseConfig

    def run(self, ctx: StepContext, config: JSONParseConfig) -> StepResult:
        path = ctx.path(config.path)
        if not path.is_file():
            raise StepError(f"{config.path}: no such file")
        try:
            data = jsonio.loads(ctx.read_text(path), max_bytes=MAX_BYTES, max_depth=256)
        except ValueError as exc:
            raise StepError(f"could not parse JSON file {config.path}: {exc}") from None
        return StepResult(outputs=extract(data, config.outputs))
