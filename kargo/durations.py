"""Go durations (time.Duration), as Kargo's manifests and expr-lang's duration() write them.

Parsing is durationpy's port of Go's time.ParseDuration; formatting is Go's Duration.String(),
so a Warehouse's default interval exports as Kargo shows it: "5m0s".
"""

import re
from datetime import timedelta

import durationpy

# Go's grammar for time.ParseDuration. durationpy alone is laxer (it takes days, weeks and years,
# and skips text between parts: "1h-5m"), so input is held to Go's grammar first.
_GO_DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)")
# time.Duration is an int64 of nanoseconds: about 292 years.
_MAX = timedelta(microseconds=(2**63 - 1) // 1000)


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """time.ParseDuration: "5m0s", "1h30m", "-1.5s", "300ms", "0"."""
    if not isinstance(text, str):
        raise DurationError(f"a duration must be a string, not {type(text).__name__}")
    invalid = DurationError(f"invalid duration {text!r} (examples: 90s, 1h30m, 250ms)")
    if not _GO_DURATION.fullmatch(text):
        raise invalid
    try:
        value = durationpy.from_str(text)
    except (durationpy.DurationError, ValueError, OverflowError):
        raise invalid from None
    if abs(value) > _MAX:
        raise DurationError(f"duration {text!r} is out of range (at most about 292 years)")
    return value


def _trim_decimal(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    digits = len(str(unit)) - 1
    fraction_text = f"{fraction:0{digits}d}".rstrip("0") if digits else ""
    return f"{whole}.{fraction_text}" if fraction_text else str(whole)


def format_duration(value: timedelta) -> str:
    """time.Duration.String(): 1h30m0s, 5m0s, 1.5s, 250ms."""
    nanos = ((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 1000
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim_decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = _trim_decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def duration_seconds(text: str | None) -> float:
    """Seconds in an optional duration field: 0 when it is unset or empty."""
    return parse_duration(text).total_seconds() if text else 0.0
