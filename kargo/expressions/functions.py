"""expr-lang's builtin functions (len, split, filter, toJSON, date, ...) and Kargo's template
helpers (quote, unsafeQuote, asJSON, asYAML)."""

import base64
import json
import math
import statistics
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from kargo.expressions.dates import date, duration
from kargo.expressions.errors import ExpressionError
from kargo.expressions.operators import MAX_STRING, equal, get_index
from kargo.expressions.values import (
    go_float,
    go_string,
    is_int,
    is_number,
    load_json,
    short,
    to_json,
    type_name,
)


def _want(fn: str, value: Any, kind: type | tuple[type, ...], label: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ExpressionError(f"{fn}() expects {label}, got {type_name(value)} ({short(value)})")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _str(fn: str, value: Any) -> str:
    return _want(fn, value, str, "a string")


def _list(fn: str, value: Any) -> list | tuple:
    return _want(fn, value, (list, tuple), "an array")


def _number(fn: str, value: Any) -> int | float:
    return _want(fn, value, (int, float), "a number")


def _len(value: Any) -> int:
    return len(_want("len", value, (str, list, tuple, Mapping), "a string, array or map"))


def _split(text: Any, sep: Any, limit: int = -1) -> list[str]:
    text, sep = _str("split", text), _str("split", sep)
    if limit == 0:
        return []
    if sep == "":
        return list(text)
    return text.split(sep) if limit < 0 else text.split(sep, limit - 1)


def _join(items: Any, sep: Any = "") -> str:
    items, sep = _list("join", items), _str("join", sep)
    return sep.join(_str("join", item) for item in items)


def _trim(text: Any, chars: Any = None) -> str:
    text = _str("trim", text)
    return text.strip() if chars is None else text.strip(_str("trim", chars))


def _to_int(value: Any) -> int:
    if is_int(value):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"cannot convert {go_float(value)} to int")
        return int(value)  # truncates toward zero, like Go
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""), 10)
        except ValueError:
            raise ExpressionError(f"int(): invalid syntax {short(value)}") from None
    raise ExpressionError(f"int() cannot convert {type_name(value)}")


def _to_float(value: Any) -> float:
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ExpressionError(f"float(): invalid syntax {short(value)}") from None
    raise ExpressionError(f"float() cannot convert {type_name(value)}")


def _from_json(text: Any) -> Any:
    try:
        return load_json(_str("fromJSON", text))
    except ValueError as exc:
        raise ExpressionError(f"fromJSON(): invalid JSON: {exc}") from None


def _numbers(fn: str, args: tuple) -> list:
    values = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    if not values:
        raise ExpressionError(f"{fn}() needs at least one number")
    return [_number(fn, v) for v in values]


def sum_numbers(values: Any) -> int | float:
    return sum(_number("sum", v) for v in _list("sum", values))


def _mean(values: Any) -> float:
    values = [_number("mean", v) for v in _list("mean", values)]
    return float(sum(values)) / len(values) if values else 0.0


def _median(values: Any) -> float:
    values = [_number("median", v) for v in _list("median", values)]
    return float(statistics.median(values)) if values else 0.0


def sorted_pairs(pairs: list[tuple[Any, Any]], order: Any) -> list[tuple[Any, Any]]:
    if order not in ("asc", "desc"):
        raise ExpressionError(f"unknown sort order {short(order)} (use 'asc' or 'desc')")
    try:
        return sorted(pairs, key=lambda kv: kv[0], reverse=order == "desc")
    except TypeError:
        raise ExpressionError("cannot sort values of different types") from None


def _sort(values: Any, order: Any = "asc") -> list:
    return [x for x, _ in sorted_pairs([(x, x) for x in _list("sort", values)], order)]


def _first(values: Any) -> Any:
    values = _want("first", values, (list, tuple, str), "an array")
    return values[0] if values else None


def _last(values: Any) -> Any:
    values = _want("last", values, (list, tuple, str), "an array")
    return values[-1] if values else None


def _get(value: Any, key: Any) -> Any:
    try:
        return get_index(value, key)
    except ExpressionError:
        return None


def _repeat(text: Any, count: Any) -> str:
    text, count = _str("repeat", text), _want("repeat", count, int, "an int")
    if count < 0 or len(text) * count > MAX_STRING:
        raise ExpressionError(f"repeat(): invalid count {count}")
    return text * count


def _round(value: Any) -> float:
    # Go's math.Round rounds half away from zero (Python's round() is banker's rounding).
    value = _number("round", value)
    return float(math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1))


def _flatten(values: Any) -> list:
    out = []
    for item in _list("flatten", values):
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


def _uniq(values: Any) -> list:
    out: list[Any] = []
    for item in _list("uniq", values):
        if not any(equal(item, seen) for seen in out):
            out.append(item)
    return out


def _quote(value: Any) -> str:
    """Kargo's quote(): the value in double quotes, so template coercion keeps it a string."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _unsafe_quote(value)


def _unsafe_quote(value: Any) -> str:
    """Kargo's unsafeQuote(): JSON of the value, in quotes (a string keeps its own quotes)."""
    return f'"{to_json(value)}"'


def _as_json(value: Any) -> str:
    """Kargo's asJSON(): indented JSON text, kept a string by the template coercion."""
    return f'"{to_json(value, indent=2)}\n"'


class _YamlDumper(yaml.SafeDumper):
    # go-yaml v3 (used by Kargo) indents block sequences under their key; PyYAML does not.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _as_yaml(value: Any) -> str:
    """Kargo's asYAML(): YAML text, kept a string by the template coercion."""
    try:
        text = yaml.dump(
            value, Dumper=_YamlDumper, default_flow_style=False, sort_keys=True, allow_unicode=True
        )
    except yaml.YAMLError as exc:
        raise ExpressionError(f"asYAML(): {exc}") from None
    if text.endswith("\n...\n"):  # PyYAML's end-of-document marker after a bare scalar
        text = text[: -len("...\n")]
    return f'"{text}"'


def _from_pairs(pairs: Any) -> dict:
    out = {}
    for pair in _list("fromPairs", pairs):
        key, value = _want("fromPairs", pair, (list, tuple), "[key, value] pairs")
        out[key] = value
    return out


BUILTINS: dict[str, Callable[..., Any]] = {
    # strings
    "len": _len,
    "upper": lambda s: _str("upper", s).upper(),
    "lower": lambda s: _str("lower", s).lower(),
    "trim": _trim,
    "trimPrefix": lambda s, p: _str("trimPrefix", s).removeprefix(_str("trimPrefix", p)),
    "trimSuffix": lambda s, p: _str("trimSuffix", s).removesuffix(_str("trimSuffix", p)),
    "split": _split,
    "join": _join,
    "replace": lambda s, old, new: _str("replace", s).replace(
        _str("replace", old), _str("replace", new)
    ),
    "repeat": _repeat,
    "indexOf": lambda s, sub: _str("indexOf", s).find(_str("indexOf", sub)),
    "lastIndexOf": lambda s, sub: _str("lastIndexOf", s).rfind(_str("lastIndexOf", sub)),
    "hasPrefix": lambda s, p: _str("hasPrefix", s).startswith(_str("hasPrefix", p)),
    "hasSuffix": lambda s, p: _str("hasSuffix", s).endswith(_str("hasSuffix", p)),
    # conversion
    "int": _to_int,
    "float": _to_float,
    "string": go_string,
    "type": type_name,
    "toJSON": lambda v: to_json(v, indent=2),
    "fromJSON": _from_json,
    "toBase64": lambda s: base64.b64encode(_str("toBase64", s).encode()).decode(),
    "fromBase64": lambda s: base64.b64decode(_str("fromBase64", s), validate=True).decode(),
    # numbers
    "abs": lambda n: abs(_number("abs", n)),
    "max": lambda *args: max(_numbers("max", args)),
    "min": lambda *args: min(_numbers("min", args)),
    "ceil": lambda n: float(math.ceil(_number("ceil", n))),
    "floor": lambda n: float(math.floor(_number("floor", n))),
    "round": _round,
    "mean": _mean,
    "median": _median,
    # arrays and maps
    "first": _first,
    "last": _last,
    "take": lambda a, n: list(_list("take", a)[: max(0, _want("take", n, int, "an int"))]),
    "reverse": lambda a: list(reversed(_list("reverse", a))),
    "sort": _sort,
    "uniq": _uniq,
    "flatten": _flatten,
    "concat": lambda *arrays: [x for a in arrays for x in _list("concat", a)],
    "keys": lambda m: list(_want("keys", m, Mapping, "a map").keys()),
    "values": lambda m: list(_want("values", m, Mapping, "a map").values()),
    "toPairs": lambda m: [[k, v] for k, v in _want("toPairs", m, Mapping, "a map").items()],
    "fromPairs": _from_pairs,
    "get": _get,
    # time
    "now": lambda: datetime.now(UTC),
    "date": date,
    "duration": duration,
    # Kargo's template helpers (pkg/expressions/json_templates.go)
    "quote": _quote,
    "unsafeQuote": _unsafe_quote,
    "asJSON": _as_json,
    "asYAML": _as_yaml,
}

# Builtins whose second argument is a predicate evaluated per element (with # bound to it).
PREDICATE_BUILTINS = frozenset(
    {
        "all",
        "any",
        "none",
        "one",
        "filter",
        "map",
        "count",
        "sum",
        "find",
        "findIndex",
        "findLast",
        "findLastIndex",
        "groupBy",
        "sortBy",
        "reduce",
    }
)
