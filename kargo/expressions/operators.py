"""expr-lang's operators on Python values: equality, ordering, membership, string tests,
arithmetic, ranges, and member access, indexing and slicing."""

import math
import types
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from kargo.expressions.errors import ExpressionError
from kargo.expressions.values import aware, is_int, is_number, short, type_name
from kargo.regex import RegexError, compile_regex

MAX_RANGE = 1_000_000
MAX_STRING = 10_000_000

# Values whose attributes are never exposed: only plain objects (e.g. dataclasses) are.
PLAIN_TYPES = (str, bytes, bool, int, float, list, tuple, datetime, timedelta, type)


def _bad_operands(op: str, a: Any, b: Any) -> ExpressionError:
    return ExpressionError(
        f"invalid operation: {type_name(a)} {op} {type_name(b)} ({short(a)} {op} {short(b)})"
    )


def require_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{what} expects a bool, got {type_name(value)} ({short(value)})")
    return value


def equal(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return aware(a) == aware(b)
    try:
        return bool(a == b)
    except Exception:
        return False


def _order(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        a, b = aware(a), aware(b)
    elif not (
        (is_number(a) and is_number(b))
        or (isinstance(a, str) and isinstance(b, str))
        or (isinstance(a, timedelta) and isinstance(b, timedelta))
    ):
        raise _bad_operands(op, a, b)
    match op:
        case "<":
            return a < b
        case "<=":
            return a <= b
        case ">":
            return a > b
        case _:
            return a >= b


def _in(item: Any, container: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, Mapping):
        try:
            return item in container
        except TypeError:
            return False
    if isinstance(container, (list, tuple)):
        return any(equal(item, element) for element in container)
    if isinstance(container, str):
        raise ExpressionError(
            "operator 'in' is not defined on string (use `contains` for substrings)"
        )
    raise _bad_operands("in", item, container)


def _matches(text: str, pattern: str) -> bool:
    # RE2, as Go's regexp: linear time, so a user's pattern cannot backtrack forever.
    try:
        regex = compile_regex(pattern)
    except RegexError as exc:
        raise ExpressionError(str(exc)) from None
    return regex.search(text) is not None  # unanchored, like Go's regexp.MatchString


def _strings(op: str, a: Any, b: Any) -> tuple[str, str]:
    if not (isinstance(a, str) and isinstance(b, str)):
        raise _bad_operands(op, a, b)
    return a, b


def compare(op: str, a: Any, b: Any) -> bool:
    """One comparison operator: ==, <, in, contains, matches, ..., or one of them after `not`."""
    negate = op.startswith("not ")
    base = op[4:] if negate else op
    match base:
        case "==":
            result = equal(a, b)
        case "!=":
            result = not equal(a, b)
        case "<" | "<=" | ">" | ">=":
            result = _order(base, a, b)
        case "in":
            result = _in(a, b)
        case "contains":
            s, sub = _strings(base, a, b)
            result = sub in s
        case "startsWith":
            s, prefix = _strings(base, a, b)
            result = s.startswith(prefix)
        case "endsWith":
            s, suffix = _strings(base, a, b)
            result = s.endswith(suffix)
        case _:  # matches
            result = _matches(*_strings(base, a, b))
    return not result if negate else result


def add(a: Any, b: Any) -> Any:
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        if isinstance(a, str) and len(a) + len(b) > MAX_STRING:
            raise ExpressionError("string too long")
        return a + b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [*a, *b]
    if isinstance(a, datetime) and isinstance(b, timedelta):
        return a + b
    if isinstance(a, timedelta) and isinstance(b, (datetime, timedelta)):
        return b + a
    raise _bad_operands("+", a, b)


def subtract(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return a - b
    if isinstance(a, datetime) and isinstance(b, datetime):
        return aware(a) - aware(b)
    if isinstance(a, (datetime, timedelta)) and isinstance(b, timedelta):
        return a - b
    raise _bad_operands("-", a, b)


def multiply(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return a * b
    if isinstance(a, timedelta) and is_number(b):
        return a * b
    if is_number(a) and isinstance(b, timedelta):
        return b * a
    raise _bad_operands("*", a, b)


def divide(a: Any, b: Any) -> float:
    # expr-lang's `/` always yields a float, even for two ints.
    if not (is_number(a) and is_number(b)):
        raise _bad_operands("/", a, b)
    if b == 0:
        raise ExpressionError("division by zero")
    return float(a) / float(b)


def modulo(a: Any, b: Any) -> int:
    if not (is_int(a) and is_int(b)):
        raise _bad_operands("%", a, b)
    if b == 0:
        raise ExpressionError("integer divide by zero")
    # Go's % truncates toward zero: the result has the sign of the dividend.
    result = abs(a) % abs(b)
    return -result if a < 0 else result


def power(a: Any, b: Any) -> float:
    if not (is_number(a) and is_number(b)):
        raise _bad_operands("**", a, b)
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError) as exc:
        raise ExpressionError(f"invalid operation {short(a)} ** {short(b)}: {exc}") from None


def negate(value: Any) -> Any:
    if is_number(value) or isinstance(value, timedelta):
        return -value
    raise ExpressionError(f"invalid operation: -{type_name(value)} ({short(value)})")


def unary_plus(value: Any) -> Any:
    if not is_number(value):
        raise ExpressionError(f"invalid operation: +{type_name(value)}")
    return value


def int_range(a: Any, b: Any) -> list[int]:
    if not (is_int(a) and is_int(b)):
        raise _bad_operands("..", a, b)
    if b - a >= MAX_RANGE:
        raise ExpressionError(f"range {a}..{b} is too large")
    return list(range(a, b + 1))


def get_member(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)  # a missing map key is nil, as in expr-lang
    if value is None:
        raise ExpressionError(
            f"cannot access member {name!r} of nil (use ?.{name} for optional access)"
        )
    # Attribute access on arbitrary objects is limited to public data of plain objects (e.g.
    # dataclasses): no dunder/private names, no reaching into functions, classes or modules.
    if (
        isinstance(value, PLAIN_TYPES)
        or isinstance(value, types.ModuleType)
        or callable(value)
        or name.startswith("_")
    ):
        raise ExpressionError(f"cannot access member {name!r} of {type_name(value)}")
    try:
        return getattr(value, name)
    except AttributeError:
        raise ExpressionError(f"{type_name(value)} has no member {name!r}") from None


def get_index(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:
            raise ExpressionError(f"invalid map key {short(key)}") from None
    if isinstance(value, (list, tuple, str)):
        if not is_int(key):
            raise ExpressionError(
                f"{type_name(value)} index must be an int, got {type_name(key)} ({short(key)})"
            )
        index = key + len(value) if key < 0 else key
        if not 0 <= index < len(value):
            raise ExpressionError(f"index out of range: {key} (length {len(value)})")
        return value[index]
    if value is None:
        raise ExpressionError(
            f"cannot access member {short(key)} of nil (use ?.[...] for optional access)"
        )
    if isinstance(key, str):
        return get_member(value, key)
    raise ExpressionError(f"cannot index {type_name(value)} with {short(key)}")


def get_slice(value: Any, start: Any, stop: Any) -> Any:
    if not isinstance(value, (list, tuple, str)):
        raise ExpressionError(f"cannot slice {type_name(value)}")
    size = len(value)
    bounds = []
    for bound, default in ((start, 0), (stop, size)):
        if bound is None:
            bound = default
        elif not is_int(bound):
            raise ExpressionError(f"slice bounds must be ints, got {type_name(bound)}")
        elif bound < 0:
            bound += size
        bounds.append(max(0, min(bound, size)))
    low, high = bounds[0], max(bounds)
    return value[low:high] if isinstance(value, str) else list(value[low:high])
