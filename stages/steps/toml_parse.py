"""toml-parse: read a TOML file and publish values from it, one output per ``outputs[].name``,
each the value of its ``fromExpression`` (expr-lang, with the document as environment).

Dates and times in the document become ISO 8601 strings (what Kargo's outputs hold once they
are stored as JSON), so an output can always be stored and read back by later steps."""

from __future__ import annotations

import datetime
import tomllib
from typing import Any

from ._parse import ParseConfig, extract
from .base import Step, StepContext, StepError, StepResult, register

MAX_BYTES = 10 * 1024 * 1024


class TOMLParseConfig(ParseConfig):
    pass


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return value


def load(text: str, name: str) -> dict[str, Any]:
    """The TOML document ``text`` as plain data; StepError (naming the file) when it is empty,
    too large or not TOML."""
    if not text:
        raise StepError(f"could not parse empty TOML file: {name}")
    if len(text.encode()) > MAX_BYTES:
        raise StepError(f"TOML file {name} is larger than {MAX_BYTES} bytes")
    try:
        return _plain(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise StepError(f"could not parse TOML file {name}: {exc}") from None


@register
class TOMLParse(Step):
    name = "toml-parse"
    Config = TOMLParseConfig

    def run(self, ctx: StepContext, config: TOMLParseConfig) -> StepResult:
        path = ctx.path(config.path)
        if not path.is_file():
            raise StepError(f"{config.path}: no such file")
        data = load(ctx.read_text(path), config.path)
        return StepResult(outputs=extract(data, config.outputs))
