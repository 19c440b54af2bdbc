"""toml-update: set the values of existing scalar keys in a TOML file.

As in Kargo, each key must already exist and name a scalar (string, number, boolean, date):
a missing key, or one naming a table or an array, is an error, and nothing is written unless
every update applies. Keys are dot-separated (``\\.`` for a literal dot); an integer part
selects an array element or the n-th ``[[array table]]``. The value must be a scalar.

The file is edited with tomlkit, so comments, blank lines, key order and every untouched
value stay as they were. Unlike Kargo (which writes every new string as a 'literal string'),
a replaced string keeps the quoting of the string it replaces where it can hold the new
value; a string replacing a non-string is written as Kargo writes it. Output: ``commitMessage``, formatted as Kargo formats it.
"""

from __future__ import annotations

import re
from typing import Any

import tomlkit
import tomlkit.exceptions
from pydantic import Field
from tomlkit.items import AoT, Array, String, StringType, Table

from .base import Step, StepContext, StepError, StepModel, StepResult, register
from .json_update import split_key
from .toml_parse import MAX_BYTES

# A string a TOML literal string ('...') can hold: no quote, no control characters but tab.
_LITERAL_OK = re.compile(r"[^'\x00-\x08\x0a-\x1f\x7f]*")


class TOMLUpdate(StepModel):
    key: str = Field(min_length=1)
    value: object = Field(...)


class TOMLUpdateConfig(StepModel):
    path: str = Field(min_length=1)
    updates: list[TOMLUpdate] = Field(min_length=1)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _new_item(old: Any, value: Any) -> Any:
    """The tomlkit item for ``value``; a string keeps the old string's quoting if it can."""
    if not isinstance(value, str):
        return tomlkit.item(value)
    if not isinstance(old, String):
        # Nothing to keep: write it as Kargo does (a literal string where one can hold it).
        return tomlkit.string(value, literal=bool(_LITERAL_OK.fullmatch(value)))
    multiline = old.type in (StringType.MLB, StringType.MLL)
    literal = old.type in (StringType.SLL, StringType.MLL)
    if literal and multiline:
        literal = "'''" not in value
    elif literal:
        literal = bool(_LITERAL_OK.fullmatch(value))
    return tomlkit.string(value, literal=literal, multiline=multiline)


def _kind(node: Any) -> str:
    if isinstance(node, AoT | Array | list):
        return "an array"
    return "a table"


def set_values(text: str, updates: list[TOMLUpdate]) -> str:
    """``text`` with every update applied, or StepError naming the first key that cannot be."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise StepError(f"error parsing TOML: {exc}") from None
    for update in updates:
        if not _is_scalar(update.value):
            raise StepError(f"value for key {update.key!r} is not a TOML scalar type")
        parts = split_key(update.key)
        parent: Any = doc
        for n, part in enumerate(parts):
            if isinstance(parent, AoT | Array):
                if not part.isdigit() or int(part) >= len(parent):
                    raise StepError(f"error finding key {update.key}: key path not found")
                index: Any = int(part)
            elif isinstance(parent, dict) and part in parent:
                index = part
            else:
                raise StepError(f"error finding key {update.key}: key path not found")
            node = parent[index]
            if n < len(parts) - 1:
                if not isinstance(node, dict | AoT | Array):
                    raise StepError(f"error finding key {update.key}: key path not found")
                parent = node
                continue
            if isinstance(node, dict | Table | AoT | Array):
                raise StepError(
                    f"error finding key {update.key}: key path addresses {_kind(node)} "
                    "instead of a scalar value"
                )
            parent[index] = _new_item(node, update.value)
    return doc.as_string()


def format_value(value: Any) -> str:
    """A value as Kargo's commit message shows it (go-toml: literal strings where possible)."""
    if isinstance(value, str):
        if _LITERAL_OK.fullmatch(value):
            return f"'{value}'"
        return tomlkit.string(value).as_string()
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_scalar(value):
        return tomlkit.item(value).as_string()
    return str(value)


@register
class TOMLUpdateStep(Step):
    name = "toml-update"
    Config = TOMLUpdateConfig

    def run(self, ctx: StepContext, config: TOMLUpdateConfig) -> StepResult:
        path = ctx.path(config.path)
        if not path.is_file():
            raise StepError(f"{config.path}: no such file")
        text = ctx.read_text(path)
        if len(text.encode()) > MAX_BYTES:
            raise StepError(f"TOML file {config.path} is larger than {MAX_BYTES} bytes")
        try:
            updated = set_values(text, config.updates)
        except StepError as exc:
            raise StepError(f"TOML file update failed: {config.path}: {exc}") from None
        ctx.write_text(path, updated)
        lines = "".join(f"\n- {u.key}: {format_value(u.value)}" for u in config.updates)
        return StepResult(outputs={"commitMessage": f"Updated {config.path}\n{lines}"})
