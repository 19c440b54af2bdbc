"""What the `http` and `http-download` steps share: their config parts and how a request is put
together (Kargo's pkg/promotion/runner/builtin/http_requester.go and http_downloader.go).

Every request goes through projects.outbound (the egress policy, re-checked on every redirect,
with time and size budgets); a refusal or a failed connection is a StepError (Errored).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, StringConstraints

from kargo.durations import DurationError, parse_duration
from projects.egress import OutboundNotAllowed
from projects.outbound import Answer, OutboundError, Request, send

from .base import StepError, StepModel

# The schemas' duration pattern. Like JSON Schema's `pattern` it is searched, not anchored, so
# "x5s" passes the schema and is refused when parsed, as Kargo's time.ParseDuration refuses it.
Duration = Annotated[str, StringConstraints(pattern=r"(?:\d+(ns|us|µs|ms|s|m|h))+")]


class NameValue(StepModel):
    name: str = Field(min_length=1)
    value: str = Field(min_length=1)


def duration(text: str | None, default: timedelta, field: str) -> timedelta:
    if not text:
        return default
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise StepError(f"error parsing {field}: {exc}") from None


def with_query(url: str, params: list[NameValue] | None) -> str:
    """The URL with `params` added to its query. As Go's url.Values.Encode, the whole query is
    then written sorted by name (values of one name keep their order)."""
    if not params:
        return url
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    pairs += [(p.name, p.value) for p in params]
    pairs.sort(key=lambda pair: pair[0])  # stable: a name's values keep their order
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def header_map(headers: list[NameValue] | None) -> dict[str, str]:
    """Headers as one dict; a name given twice is sent once with its values joined by ", "
    (what HTTP defines a repeated header to mean)."""
    out: dict[str, str] = {}
    names: dict[str, str] = {}
    for header in headers or []:
        key = names.setdefault(header.name.lower(), header.name)
        out[key] = f"{out[key]}, {header.value}" if key in out else header.value
    return out


def send_request(request: Request) -> Answer:
    try:
        return send(request)
    except OutboundNotAllowed as exc:
        raise StepError(str(exc)) from None
    except OutboundError as exc:
        raise StepError(f"error sending HTTP request: {exc}") from None
