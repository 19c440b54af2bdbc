"""JSON from users (request bodies), read within a budget: a size and a nesting depth, and
only what JSON allows (no NaN, no lone surrogates). Every failure is a JSONInputError (a
ValueError) whose message says what was wrong, so a caller answers 400 with it, never a 500:
`[` ten thousand times over is "nests deeper than 64 levels", not a RecursionError.
"""

import json
from typing import Any

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64


class JSONInputError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not JSON")


def _check(value: Any, max_depth: int) -> None:
    """Refuse nesting deeper than `max_depth` and strings that are not Unicode (a lone UTF-16
    surrogate, `"\\udc80"`, which no database or page can store), walking without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise JSONInputError("JSON string holds a lone UTF-16 surrogate") from None
            continue
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JSONInputError(f"JSON nests deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


def loads(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in `data` (UTF-8, -16 or -32 bytes, or text), or a JSONInputError."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JSONInputError(f"JSON is {size:,} bytes, over the limit of {max_bytes:,} bytes")
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        # Python's parser recurses once per level: far past max_depth, it runs out of stack.
        raise JSONInputError(f"JSON nests deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise JSONInputError(
            f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise JSONInputError("JSON must be UTF-8 (or UTF-16 or UTF-32) text") from None
    except JSONInputError:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise JSONInputError(f"invalid JSON: {exc}") from None
    _check(value, max_depth)
    return value
