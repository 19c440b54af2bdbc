"""Times and durations in expressions: date() and duration(), and the Go methods of time.Time
and time.Duration that Kargo users reach for (t.Year(), d.Hours(), t.Format(layout), ...)."""

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from kargo.durations import DurationError, format_duration, parse_duration
from kargo.expressions.errors import ExpressionError
from kargo.expressions.values import aware, go_time_string, type_name

# Go reference-time layout elements mapped to strptime/strftime directives.
_GO_LAYOUT = {
    "2006": "%Y",
    "06": "%y",
    "January": "%B",
    "Jan": "%b",
    "01": "%m",
    "Monday": "%A",
    "Mon": "%a",
    "02": "%d",
    "_2": "%d",
    "15": "%H",
    "03": "%I",
    "04": "%M",
    "05": "%S",
    "PM": "%p",
    "MST": "%Z",
    "Z07:00": "%z",
    "-07:00": "%z",
    "Z0700": "%z",
    "-0700": "%z",
    ".000000": ".%f",
    ".000": ".%f",
    ".999999": ".%f",
    ".999": ".%f",
    "%": "%%",
}
_GO_LAYOUT_RE = re.compile(
    "|".join(re.escape(k) for k in sorted(_GO_LAYOUT, key=len, reverse=True))
)


def _go_layout(layout: str) -> str:
    return _GO_LAYOUT_RE.sub(lambda m: _GO_LAYOUT[m.group(0)], layout)


def date(text: Any, layout: str | None = None, zone: str | None = None) -> datetime:
    """expr-lang's date(): RFC 3339, "2006-01-02", "2006-01-02 15:04:05", "15:04:05", RFC 1123
    or an explicit Go layout; the result is always timezone-aware (UTC unless told otherwise)."""
    if isinstance(text, datetime):
        return aware(text)
    if not isinstance(text, str):
        raise ExpressionError(f"date() expects a string, got {type_name(text)}")
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ValueError, KeyError, OSError):
        raise ExpressionError(f"unknown time zone {zone!r}") from None
    value = None
    if layout is not None:
        try:
            value = datetime.strptime(text, _go_layout(layout))
        except ValueError as exc:
            raise ExpressionError(
                f"cannot parse date {text!r} with layout {layout!r}: {exc}"
            ) from None
    else:
        for parse in (
            datetime.fromisoformat,
            lambda s: datetime.strptime(s, "%H:%M:%S"),
            parsedate_to_datetime,
        ):
            try:
                value = parse(text)
                break
            except (ValueError, TypeError, IndexError):
                continue
    if value is None:
        raise ExpressionError(f"cannot parse date {text!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def duration(text: Any) -> timedelta:
    """expr-lang's duration(): Go's time.ParseDuration, e.g. "1h30m", "-1.5s", "300ms"."""
    if not isinstance(text, str):
        raise ExpressionError(f"duration() expects a string, got {type_name(text)}")
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise ExpressionError(str(exc)) from None


TIME_METHODS: dict[str, Callable[..., Any]] = {
    "Year": lambda t: t.year,
    "Month": lambda t: t.month,
    "Day": lambda t: t.day,
    "Hour": lambda t: t.hour,
    "Minute": lambda t: t.minute,
    "Second": lambda t: t.second,
    "Nanosecond": lambda t: t.microsecond * 1000,
    "YearDay": lambda t: t.timetuple().tm_yday,
    "Unix": lambda t: math.floor(aware(t).timestamp()),
    "UnixMilli": lambda t: math.floor(aware(t).timestamp() * 1000),
    "UTC": lambda t: aware(t).astimezone(UTC),
    "Format": lambda t, layout: t.strftime(_go_layout(layout)),
    "Before": lambda t, u: aware(t) < aware(u),
    "After": lambda t, u: aware(t) > aware(u),
    "Equal": lambda t, u: aware(t) == aware(u),
    "Sub": lambda t, u: aware(t) - aware(u),
    "Add": lambda t, d: t + d,
    "String": go_time_string,
}

DURATION_METHODS: dict[str, Callable[..., Any]] = {
    "Hours": lambda d: d.total_seconds() / 3600,
    "Minutes": lambda d: d.total_seconds() / 60,
    "Seconds": lambda d: d.total_seconds(),
    "Milliseconds": lambda d: d // timedelta(milliseconds=1),
    "Microseconds": lambda d: d // timedelta(microseconds=1),
    "Nanoseconds": lambda d: (d // timedelta(microseconds=1)) * 1000,
    "String": format_duration,
}
