"""Timestamps the Kubernetes way: RFC 3339 in UTC with a Z, parsed in one place."""

import re
from datetime import UTC, datetime

# RFC 3339 date-time as the API server's OpenAPI `format: date-time` accepts it.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def rfc3339(when: datetime | None) -> str:
    """metav1.Time's format: UTC, whole seconds, Z suffix ("" for None)."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(value: datetime) -> str:
    """Go's time.RFC3339Nano: fractional seconds without trailing zeros, the zone as written."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is None:
        return text
    if not offset:
        return text + "Z"
    zone = value.strftime("%z")
    return text + zone[:3] + ":" + zone[3:]


def is_rfc3339(text: str) -> bool:
    return bool(RFC3339.match(text)) and parse_rfc3339(text) is not None


def parse_rfc3339(text: str | datetime | None) -> datetime | None:
    """A timezone-aware datetime from an RFC 3339 string (or a datetime, made aware in UTC).
    None for an empty value or one that is not a valid date-time."""
    if not text:
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
