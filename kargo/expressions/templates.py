"""Kargo's templates: ``${{ }}`` and ``${% %}`` inside config strings, and the JSON coercion of
the text they produce (pkg/expressions/json_templates.go)."""

import functools
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from kargo.durations import format_duration
from kargo.expressions.budget import Budget
from kargo.expressions.compiler import Expression, compile_expression
from kargo.expressions.errors import ExpressionError
from kargo.expressions.values import load_json, to_json
from kargo.times import rfc3339_nano

_DELIMITERS = (("${{", "}}"), ("${%", "%}"))


def has_expression(value: Any) -> bool:
    """True when any string value (not dict key) in ``value`` contains ``${{`` or ``${%``."""
    if isinstance(value, str):
        return any(start in value for start, _ in _DELIMITERS)
    if isinstance(value, Mapping):
        return any(has_expression(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_expression(v) for v in value)
    return False


def evaluate_template(
    value: Any, env: Mapping[str, Any] | None = None, budget: Budget | None = None
) -> Any:
    """Evaluate ``${{ }}`` / ``${% %}`` in every string value of ``value`` (never in dict keys).

    Follows Kargo's pkg/expressions/json_templates.go: a string that is one expression yields its
    raw value; otherwise the pieces are joined as text, and text that parses as JSON becomes that
    JSON value (``quote()`` wraps a value in quotes to keep it a string).

    Every expression in ``value`` shares one budget (a fresh Budget unless one is given), so a
    config of many expressions costs no more than one expression may.
    """
    env = env if env is not None else {}
    budget = budget if budget is not None else Budget()
    if isinstance(value, str):
        return _evaluate_string(value, env, budget)
    if isinstance(value, Mapping):
        return {key: evaluate_template(item, env, budget) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [evaluate_template(item, env, budget) for item in value]
    return value


@functools.lru_cache(maxsize=4096)
def _split_template(template: str) -> tuple[str | Expression, ...]:
    """Literal text and compiled expressions, in order. Like Kargo, an expression ends at the
    first closing delimiter, even inside a string literal; ``${% %}`` exists for that case."""
    parts: list[str | Expression] = []
    rest = template
    while True:
        found = [(rest.find(start), start, end) for start, end in _DELIMITERS if start in rest]
        if not found:
            parts.append(rest)
            break
        index, start, end = min(found)
        close = rest.find(end, index + len(start))
        if close < 0:
            raise ExpressionError(
                f"unclosed expression: expected {end!r} but reached the end of the template",
                source=template,
            )
        parts.append(rest[:index])
        parts.append(compile_expression(rest[index + len(start) : close]))
        rest = rest[close + len(end) :]
    return tuple(part for part in parts if part != "")


def _evaluate_string(template: str, env: Mapping[str, Any], budget: Budget) -> Any:
    if not has_expression(template):
        # Plain strings are never coerced, so "42" stays the string "42".
        return template
    parts = _split_template(template)
    values = [
        part.evaluate(env, budget) if isinstance(part, Expression) else part for part in parts
    ]
    results = [v for p, v in zip(parts, values, strict=True) if isinstance(p, Expression)]
    only_space = all(p.isspace() for p in parts if isinstance(p, str))
    if len(results) == 1 and only_space and not isinstance(results[0], str):
        return results[0]
    text = "".join(
        v if isinstance(p, str) else _template_text(v) for p, v in zip(parts, values, strict=True)
    )
    return _coerce(text)


def _template_text(value: Any) -> str:
    """How a value reads when interpolated into surrounding text."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, Mapping, list, tuple)):
        return to_json(value)
    if isinstance(value, datetime):
        return rfc3339_nano(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value)


def _coerce(text: str) -> Any:
    """Kargo's last step: text that is JSON becomes a JSON value; text wrapped in double quotes
    (what quote() produces) loses the quotes and stays a string."""
    body, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")
    if len(body) > 1 and body.startswith('"') and body.endswith('"'):
        return body[1:-1] + newline
    try:
        value = load_json(body)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value
