"""yaml-update: set the values of existing scalar keys in a YAML file.

Like Kargo (pkg/yaml), the file is edited in place as text: PyYAML's composer
gives the exact character span of each target scalar and only those spans are
rewritten, so comments, key order, indentation and quoting elsewhere survive
untouched. (A PyYAML load/dump round trip would drop every comment.) As in
Kargo, a key that does not exist, or that names a mapping/sequence rather than
a scalar, is an error: this step updates values, it does not add keys.

Key syntax (Kargo/sjson style): dot-separated parts, ``\\.`` for a literal dot,
``\\\\`` for a literal backslash, integer parts index sequences
(``spec.containers.0.image``). ``containers[0]`` and ``containers.[0]`` are
accepted as spellings of ``containers.0``; a leading ``:`` on a part forces it
to be read as a mapping key even when it looks like a number.
"""

from __future__ import annotations

import json
import re

import yaml
from pydantic import Field

from kargo import yamlio
from kargo.yamlio import YAMLSyntaxError

from .base import Step, StepContext, StepError, StepModel, StepResult, register


class YAMLUpdate(StepModel):
    key: str = Field(min_length=1)
    value: object = Field(...)  # required; any JSON value (null included)


class YAMLUpdateConfig(StepModel):
    path: str = Field(min_length=1)
    updates: list[YAMLUpdate] = Field(min_length=1)


# --- keys ---------------------------------------------------------------------------

_INDEX_SUFFIX = re.compile(r"^(.*?)((?:\[\d+\])+)$")


def split_key(key: str) -> list[tuple[str, bool]]:
    """Split a key into (part, forced_mapping_key) tuples."""
    parts: list[tuple[str, bool]] = []
    current = ""
    forced = False  # part started with ":" -> always a mapping key
    escaped = False  # previous char was a backslash
    literal = False  # part contains an escape -> no [i] parsing

    def finish() -> None:
        if not current:
            raise StepError(f"empty part in key {key!r}")
        match = None if (literal or forced) else _INDEX_SUFFIX.match(current)
        if not match:
            parts.append((current, forced))
            return
        if match.group(1):
            parts.append((match.group(1), False))
        parts.extend((index, False) for index in re.findall(r"\[(\d+)\]", match.group(2)))

    for char in key:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = literal = True
        elif char == ".":
            finish()
            current, forced, literal = "", False, False
        elif char == ":" and not current:
            forced = True
        else:
            current += char
    if escaped:
        raise StepError(f"key {key!r} ends with an unfinished escape")
    finish()
    return parts


def find_scalar(root: yaml.Node, key: str) -> yaml.ScalarNode:
    node = root
    for part, forced in split_key(key):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    node = value_node
                    break
            else:
                raise StepError(f"error finding key {key}: key path not found")
        elif isinstance(node, yaml.SequenceNode):
            if forced or not part.isdigit():
                raise StepError(f"error finding key {key}: {part!r} is not a sequence index")
            index = int(part)
            if index >= len(node.value):
                raise StepError(f"error finding key {key}: index {index} out of range")
            node = node.value[index]
        else:
            raise StepError(f"error finding key {key}: key path not found")
    if not isinstance(node, yaml.ScalarNode):
        kind = "mapping" if isinstance(node, yaml.MappingNode) else "sequence"
        raise StepError(f"error finding key {key}: key path addresses a {kind} instead of a scalar")
    return node


# --- values -------------------------------------------------------------------------


def _plain_is_safe(text: str) -> bool:
    """Would ``text`` written unquoted read back as the same string?"""
    if (
        not text
        or text != text.strip()
        or "\n" in text
        or any(c in text for c in ",[]{}#&*!|>'\"%@`")
    ):
        return False
    try:
        return yaml.safe_load(f"k: {text}") == {"k": text}
    except yaml.YAMLError:
        return False


def format_value(value: object, style: str | None = None) -> str:
    """YAML text for a value written in place of a scalar."""
    if isinstance(value, str):
        if style == "'" and "\n" not in value:
            return "'" + value.replace("'", "''") + "'"
        if style != '"' and _plain_is_safe(value):
            return value
        # A JSON string is a valid YAML double-quoted scalar.
        return json.dumps(value, ensure_ascii=False)
    # Numbers, booleans, null and (flow-style) lists/maps: JSON is valid YAML.
    return json.dumps(value, ensure_ascii=False)


def message_value(value: object) -> str:
    """Kargo's QuoteIfNecessary for the commit message: strings that would read
    as another type (number, bool, JSON) are quoted; others are shown as is."""
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    try:
        json.loads(value)
        looks_typed = True
    except ValueError:
        looks_typed = value.lower() in ("true", "false", "t", "f")
    return json.dumps(value) if looks_typed else value


def set_values(text: str, updates: list[tuple[str, object]]) -> str:
    try:
        yamlio.check(text)
        documents = list(yaml.compose_all(text))
    except YAMLSyntaxError as exc:
        raise StepError(f"error parsing YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise StepError(f"error parsing YAML: {exc}") from None
    if not documents or documents[0] is None:
        raise StepError("the YAML file is empty")
    # Like Kargo, keys address the first document.
    root = documents[0]
    changes: dict[int, tuple[int, str]] = {}
    for key, value in updates:
        node = find_scalar(root, key)
        start, end = node.start_mark.index, node.end_mark.index
        replacement = format_value(value, node.style)
        if node.style in ("|", ">"):
            # A block scalar's span runs to the start of the next token; keep
            # its trailing line breaks/indentation so the next line stays put.
            span = text[start:end]
            replacement += span[len(span.rstrip(" \n")) :]
        changes[start] = (end, replacement)  # a later update of one key wins
    for start in sorted(changes, reverse=True):
        end, replacement = changes[start]
        text = text[:start] + replacement + text[end:]
    return text


@register
class YAMLUpdateStep(Step):
    name = "yaml-update"
    Config = YAMLUpdateConfig

    def run(self, ctx: StepContext, config: YAMLUpdateConfig) -> StepResult:
        path = ctx.path(config.path)
        if not path.is_file():
            raise StepError(f"{config.path}: no such file")
        # Read and written as bytes: \r\n files stay byte-identical outside the edited spans.
        text = ctx.read_text(path)
        updated = set_values(text, [(u.key, u.value) for u in config.updates])
        ctx.write_text(path, updated)
        lines = "".join(f"\n- {u.key}: {message_value(u.value)}" for u in config.updates)
        return StepResult(outputs={"commitMessage": f"Updated {config.path}\n{lines}"})
