"""json-update: set values in a JSON file, editing the text in place.

Kargo uses sjson, which rewrites only the bytes of the value it sets; so does this step, so the
file's indentation, key order and every other byte stay as they were. Keys (the sjson subset
Kargo documents): dot-separated parts, ``\\.`` for a literal dot, an integer part indexes an
array, ``-1`` appends to an array; a missing key is created (with the objects on its way). The
value must be a scalar (string, number, boolean), as in Kargo. Output: ``commitMessage``.
Not supported from sjson: ``*``/``?`` wildcards and ``:`` forced keys in set paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from kargo import jsonio

from .base import Step, StepContext, StepError, StepModel, StepResult, register


class JSONUpdate(StepModel):
    key: str = Field(min_length=1)
    value: object = Field(...)


class JSONUpdateConfig(StepModel):
    path: str = Field(min_length=1)
    updates: list[JSONUpdate] = Field(min_length=1)


# --- a JSON scanner that keeps the span of every value -------------------------------


@dataclass
class Node:
    start: int
    end: int
    kind: str  # object | array | scalar
    members: dict[str, Node] = field(default_factory=dict)
    items: list[Node] = field(default_factory=list)


_decoder = json.JSONDecoder()


def _ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def scan(text: str, i: int = 0) -> Node:
    i = _ws(text, i)
    if i >= len(text):
        raise ValueError("unexpected end of JSON")
    if text[i] == "{":
        node = Node(i, i, "object")
        i = _ws(text, i + 1)
        if text[i] == "}":
            node.end = i + 1
            return node
        while True:
            key, i = _decoder.raw_decode(text, _ws(text, i))
            i = _ws(text, i)
            if text[i] != ":":
                raise ValueError(f"expected ':' at offset {i}")
            value = scan(text, i + 1)
            node.members[key] = value
            i = _ws(text, value.end)
            if text[i] == "}":
                node.end = i + 1
                return node
            if text[i] != ",":
                raise ValueError(f"expected ',' or '}}' at offset {i}")
            i += 1
    if text[i] == "[":
        node = Node(i, i, "array")
        i = _ws(text, i + 1)
        if text[i] == "]":
            node.end = i + 1
            return node
        while True:
            value = scan(text, i)
            node.items.append(value)
            i = _ws(text, value.end)
            if text[i] == "]":
                node.end = i + 1
                return node
            if text[i] != ",":
                raise ValueError(f"expected ',' or ']' at offset {i}")
            i += 1
    _, end = _decoder.raw_decode(text, i)
    return Node(i, end, "scalar")


def split_key(key: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in key:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    if any(part == "" for part in parts):
        raise StepError(f"key {key!r} has an empty part")
    return parts


def _nested(parts: list[str], value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    for part in reversed(parts):
        text = "{" + json.dumps(part, ensure_ascii=False) + ":" + text + "}"
    return text


def set_value(text: str, key: str, value: Any) -> str:
    """``text`` with ``key`` set to ``value``; only the affected bytes change."""
    try:
        node = scan(text)
    except (ValueError, IndexError) as exc:
        raise StepError(f"error parsing JSON: {exc}") from None
    parts = split_key(key)
    for n, part in enumerate(parts):
        rest = parts[n + 1 :]
        if node.kind == "object":
            if part in node.members:
                node = node.members[part]
                continue
            addition = json.dumps(part, ensure_ascii=False) + ":" + _nested(rest, value)
            close = node.end - 1
            sep = "," if node.members else ""
            return text[:close] + sep + addition + text[close:]
        if node.kind == "array" and (part.isdigit() or part == "-1"):
            index = int(part)
            if 0 <= index < len(node.items):
                node = node.items[index]
                continue
            if index in (-1, len(node.items)):
                close = node.end - 1
                sep = "," if node.items else ""
                return text[:close] + sep + _nested(rest, value) + text[close:]
            raise StepError(f"error setting key {key!r}: index {index} is out of range")
        raise StepError(f"error setting key {key!r}: {part!r} is not in an object or array")
    return text[: node.start] + json.dumps(value, ensure_ascii=False) + text[node.end :]


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # Go's %q
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


@register
class JSONUpdateStep(Step):
    name = "json-update"
    Config = JSONUpdateConfig

    def run(self, ctx: StepContext, config: JSONUpdateConfig) -> StepResult:
        path = ctx.path(config.path)
        if not path.is_file():
            raise StepError(f"{config.path}: no such file")
        text = ctx.read_text(path)
        try:
            jsonio.loads(text, max_bytes=10 * 1024 * 1024, max_depth=256)
        except ValueError as exc:
            raise StepError(f"error reading JSON file {config.path}: {exc}") from None
        for update in config.updates:
            if not isinstance(update.value, str | int | float | bool) or update.value is None:
                raise StepError(f"value for key {update.key!r} is not a scalar type")
            text = set_value(text, update.key, update.value)
        ctx.write_text(path, text)
        lines = "".join(f"\n- {u.key}: {_go_value(u.value)}" for u in config.updates)
        return StepResult(outputs={"commitMessage": f"Updated {config.path}\n{lines}"})
