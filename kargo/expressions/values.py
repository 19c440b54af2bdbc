"""Values as expr-lang sees them: their type names, and how Go prints them (fmt's %v for
string(), encoding/json for toJSON() and templates)."""

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kargo.durations import format_duration
from kargo.expressions.errors import ExpressionError
from kargo.times import rfc3339_nano


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, datetime):
        return "time.Time"
    if isinstance(value, timedelta):
        return "time.Duration"
    if callable(value):
        return "func"
    return type(value).__name__


def short(value: Any) -> str:
    """The value as an error message quotes it: Go's %v (strings in quotes), cut to 40 chars.
    Only the start of the value is rendered, however large the value is."""
    if isinstance(value, str):
        head = value[:64]
        text = json.dumps(head) + ("..." if len(head) < len(value) else "")
    else:
        pieces, size = [], 0
        for piece in _go_pieces(value):
            pieces.append(piece[:41])
            size += len(piece)
            if size > 40:
                break
        text = "".join(pieces)
    return text if len(text) <= 40 else text[:37] + "..."


def aware(value: datetime) -> datetime:
    # Naive datetimes from callers are taken as UTC so they compare with date()/now().
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _float_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(value) and the decimal point position:
    value == 0.DIGITS * 10**point (Go's strconv representation)."""
    _, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits))
    stripped = text.rstrip("0") or "0"
    exponent += len(text) - len(stripped)
    return stripped, len(stripped) + exponent


def _format_e(digits: str, point: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _format_f(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def go_float(value: float, json_style: bool = False) -> str:
    """A float the way Go prints it: %v for string(), encoding/json for templates."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, point = _float_digits(value)
    if json_style:
        if 1e-6 <= abs(value) < 1e21:
            return sign + _format_f(digits, point)
        return sign + _format_e(digits, point).replace("e-0", "e-")
    exp = point - 1
    if exp < -4 or exp >= 6:  # %v is the shortest %g: 1e+06, 1.5e-05
        return sign + _format_e(digits, point)
    return sign + _format_f(digits, point)


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise ExpressionError(f"integer of {value.bit_length()} bits is too large") from None


def _go_pieces(value: Any):
    """Go's %v of `value`, piece by piece, so a caller can stop after the first few."""
    if isinstance(value, (list, tuple)):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield " "
            yield from _go_pieces(item)
        yield "]"
    elif isinstance(value, Mapping):
        yield "map["
        for i, (key, item) in enumerate(_sorted_items(value)):
            if i:
                yield " "
            yield from _go_pieces(key)
            yield ":"
            yield from _go_pieces(item)
        yield "]"
    else:
        yield go_string(value)


def go_string(value: Any) -> str:
    """Go's fmt %v, which is what expr-lang's string() produces."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, Mapping)):
        return "".join(_go_pieces(value))
    if isinstance(value, datetime):
        return go_time_string(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value)


def go_time_string(value: datetime) -> str:
    """time.Time.String(): 2024-03-01 10:20:30.5 +0000 UTC."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    if value.tzinfo is not None:
        text += f" {value.strftime('%z')} {value.tzname() or ''}".rstrip()
    return text


def _sorted_items(mapping: Mapping) -> list[tuple[Any, Any]]:
    # Go sorts map keys when printing and marshalling; fall back to insertion order when the
    # keys are not mutually comparable.
    try:
        return sorted(mapping.items(), key=lambda kv: kv[0])
    except TypeError:
        return list(mapping.items())


def to_json(value: Any, indent: int | None = None, level: int = 0) -> str:
    """JSON the way Go's encoding/json writes it: sorted keys, Go float formatting, compact
    unless indented (MarshalIndent style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"cannot convert {go_float(value)} to JSON")
        return go_float(value, json_style=True)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return json.dumps(rfc3339_nano(value))
    if isinstance(value, timedelta):
        return json.dumps(format_duration(value))
    if isinstance(value, Mapping):
        entries = [
            (json.dumps(str(k), ensure_ascii=False), to_json(v, indent, level + 1))
            for k, v in _sorted_items(value)
        ]
        return _json_block(
            "{", "}", [f"{k}:{' ' if indent else ''}{v}" for k, v in entries], indent, level
        )
    if isinstance(value, (list, tuple)):
        return _json_block("[", "]", [to_json(v, indent, level + 1) for v in value], indent, level)
    raise ExpressionError(f"cannot convert {type_name(value)} to JSON")


def _json_block(open_: str, close: str, items: list[str], indent: int | None, level: int) -> str:
    if not items:
        return open_ + close
    if not indent:
        return open_ + ",".join(items) + close
    inner = "\n" + " " * (indent * (level + 1))
    return open_ + inner + ("," + inner).join(items) + "\n" + " " * (indent * level) + close


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str) -> Any:
    """json.loads as Go reads JSON: NaN and Infinity are not JSON. Raises ValueError."""
    return json.loads(text, parse_constant=_reject_constant)
