"""One way to turn pydantic validation errors into `path: reason` lines a user can act on."""

import re
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldError:
    path: str  # YAML path, e.g. "spec.requestedFreight[0].origin.kind"
    message: str  # short human reason, e.g. "unknown field"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def one_of(values: list[str]) -> str:
    return "must be one of " + ", ".join(value if value else '""' for value in values)


def field_path(loc: tuple, prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def reason(error: dict) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return one_of(re.findall(r"'((?:[^'\\]|\\.)*)'", ctx.get("expected", "")))
    if kind == "string_type":
        return "must be a string"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return "must be an integer"
    if kind in ("bool_type", "bool_parsing"):
        return "must be a boolean"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object"
    if kind == "list_type":
        return "must be a list"
    if kind == "too_short":
        count = ctx.get("min_length")
        return f"must have at least {count} item{'s' if count != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "string_too_short":
        count = ctx.get("min_length")
        return "must not be empty" if count == 1 else f"must be at least {count} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    # Our own rules (PydanticCustomError, ValueError in validators) carry their message as-is;
    # pydantic prefixes the latter with "Value error, ".
    return error["msg"].removeprefix("Value error, ")


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Every error of a validation, once each, in the order pydantic found them."""
    found: list[FieldError] = []
    for error in exc.errors():
        item = FieldError(field_path(error["loc"], prefix), reason(error))
        if item not in found:
            found.append(item)
    return found
