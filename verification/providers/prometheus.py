"""The `prometheus` metric (argo-rollouts metricproviders/prometheus): one PromQL query through
Prometheus' HTTP API, `/api/v1/query` at this moment or, with `rangeQuery`, `/api/v1/query_range`
between two expr-lang times (`now() - duration("5m")`).

The result is what Argo Rollouts hands its conditions: a vector or a matrix becomes a list of
floats (a matrix's series one after another, each in time order), so `result[0] >= 0.95` and
`all(result, # < 1000)` read the same; a scalar becomes a float; any other result type is an
Error measurement. Prometheus' warnings are kept in the measurement's metadata.
"""

import json
import math
import re
from base64 import b64encode
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kargo.durations import DurationError, parse_duration
from kargo.expressions import ExpressionError, evaluate
from kargo.expressions.values import type_name
from kargo.redaction import redact
from projects.egress import OutboundNotAllowed
from projects.outbound import OutboundError, Request, send

from . import Measured, MeasurementError, provider

# How much of an unexpected answer's body an error message quotes.
BODY_EXCERPT_CHARS = 200
# A header name is an HTTP token; a value may not hold control characters, which would split or
# end the header (httpx refuses them too, but quoting the value in its error).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


@provider("prometheus")
def measure(config: dict, timeout: float) -> Measured:
    address = _address(config.get("address"))
    query = config.get("query")
    if not isinstance(query, str) or not query.strip():
        raise MeasurementError("prometheus query is not configured")
    range_query = config.get("rangeQuery")
    if range_query is not None:
        if not isinstance(range_query, dict):
            raise MeasurementError("rangeQuery must be an object with start, end and step")
        url = _api_url(address, "query_range", {"query": query, **_range(range_query)})
    else:
        url = _api_url(address, "query", {"query": query})
    request = Request(
        "GET",
        url,
        headers=_headers(config),
        timeout=_timeout(config.get("timeout"), timeout),
        insecure=bool(config.get("insecure")),
    )
    try:
        answer = send(request)
    except (OutboundError, OutboundNotAllowed) as exc:
        raise MeasurementError(str(exc)) from None
    return measured_from_answer(answer.status, answer.body)


def measured_from_answer(status: int, body: bytes) -> Measured:
    """The measurement an answer of Prometheus' query API gives: its result as Argo Rollouts
    hands it to the conditions, and its warnings. Raises MeasurementError for an error answer,
    an answer that is not the API's JSON, or a result type Argo Rollouts does not take."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and envelope.get("status") == "error":
        # Prometheus answers a bad query with 400 (or 422 when it cannot run it) and this
        # envelope; its errorType and error say what is wrong, as Prometheus' Go client reports.
        error_type = envelope.get("errorType") or "error"
        raise MeasurementError(f"{error_type}: {envelope.get('error') or '(no message)'}")
    if not 200 <= status < 300:
        raise MeasurementError(f"received non 2xx response code: {status}{_excerpt(body, ': ')}")
    if not isinstance(envelope, dict) or envelope.get("status") != "success":
        raise MeasurementError(
            f"bad_response: the answer is not a Prometheus API response{_excerpt(body, ': ')}"
        )
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise MeasurementError("bad_response: the answer has no data")
    measured = Measured(result_value(data.get("resultType"), data.get("result")))
    warnings = [str(warning) for warning in envelope.get("warnings") or []]
    if warnings:
        # Argo Rollouts' form: each warning quoted, comma-separated.
        measured.metadata["warnings"] = ", ".join(f'"{warning}"' for warning in warnings)
    return measured


def result_value(result_type, result) -> float | list[float]:
    """The value of a query result by its type: a vector or matrix gives a list of floats (a
    matrix's series one after another), a scalar a float; other types are not supported."""
    if result_type == "scalar":
        return _sample_value(result)
    if result_type == "vector":
        return [_sample_value(_sample_field(sample, "value")) for sample in _list(result)]
    if result_type == "matrix":
        return [
            _sample_value(point)
            for series in _list(result)
            for point in _list(_sample_field(series, "values"))
        ]
    if not isinstance(result_type, str):
        raise MeasurementError("bad_response: the answer has no resultType")
    raise MeasurementError(
        f"Prometheus metric type not supported: the query gives a {result_type:.40}, "
        "not a vector, matrix or scalar"
    )


def _list(value) -> list:
    if not isinstance(value, list):
        raise MeasurementError(f"bad_response: expected a list in the result, got {value!r:.80}")
    return value


def _sample_field(sample, name: str):
    if not isinstance(sample, dict):
        raise MeasurementError(f"bad_response: expected a sample, got {sample!r:.80}")
    if "histogram" in sample or "histograms" in sample:
        # Argo Rollouts reads a native histogram sample as 0 (and skips a series' histogram
        # points): a wrong number that a condition then passes is worse than an Error.
        raise MeasurementError(
            "native histogram samples are not supported: query a float series "
            "(for example histogram_quantile() or histogram_count() of it)"
        )
    if name not in sample:
        raise MeasurementError(f"bad_response: a sample without {name!r}")
    return sample[name]


def _sample_value(point) -> float:
    """The float of a `[<unix time>, "<value>"]` pair; Prometheus writes values as strings, with
    "NaN", "+Inf" and "-Inf" for the special ones, which float() reads as Go does."""
    if not isinstance(point, list) or len(point) != 2 or not isinstance(point[1], str):
        raise MeasurementError(f"bad_response: expected [time, value], got {point!r:.80}")
    try:
        return float(point[1])
    except ValueError:
        raise MeasurementError(
            f"bad_response: sample value {point[1]!r:.40} is not a number"
        ) from None


def _address(address) -> str:
    if not address:
        raise MeasurementError("prometheus address is not configured")
    if not isinstance(address, str):
        raise MeasurementError("prometheus address must be a string")
    parts = urlsplit(address)
    if not parts.scheme or not parts.hostname:
        # Not quoted: an address that is not a URL may still hold credentials (user:password@)
        # where redact() cannot tell them apart.
        raise MeasurementError(
            "prometheus address is not a URL (expected http(s)://host[:port][/path])"
        )
    return address


def _api_url(address: str, endpoint: str, params: dict[str, str]) -> str:
    """`address` with /api/v1/<endpoint> after its path (Prometheus may be served under a
    prefix: http://host/prometheus) and `params` added to any query it already has."""
    parts = urlsplit(address)
    path = f"{parts.path.rstrip('/')}/api/v1/{endpoint}"
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _timeout(configured, budget: float) -> float:
    """The metric's `timeout` (seconds), never more than the caller's budget."""
    if configured is None:
        return budget
    if isinstance(configured, bool) or not isinstance(configured, int | float):
        raise MeasurementError("prometheus timeout must be a number of seconds")
    if configured <= 0:
        raise MeasurementError("prometheus timeout must be a positive number of seconds")
    return min(float(configured), budget)


def _headers(config: dict) -> dict[str, str]:
    """The request's headers: basic auth, then the metric's own headers, which replace one of
    the same name (Authorization included), as Argo Rollouts' round trippers do. Messages name
    a header, never its value."""
    headers: dict[str, str] = {}
    authentication = config.get("authentication") or {}
    if authentication.get("oauth2") or authentication.get("sigv4"):
        raise MeasurementError(
            "oauth2 and sigv4 authentication of prometheus metrics are not supported by this "
            "server (use basicAuth, or an Authorization header)"
        )
    basic = authentication.get("basicAuth") or {}
    username, password = basic.get("username") or "", basic.get("password") or ""
    if username or password:
        if not username:
            raise MeasurementError("missing mandatory parameter for basic auth: username")
        if not password:
            raise MeasurementError("missing mandatory parameter for basic auth: password")
        token = b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    for header in config.get("headers") or []:
        header = header if isinstance(header, dict) else {}
        name, value = header.get("key"), header.get("value")
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise MeasurementError(f"invalid header name {str(name)!r:.60}")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise MeasurementError(
                f"the value of header {name!r} must be printable ASCII text on one line"
            )
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    return headers


def _range(range_query: dict) -> dict[str, str]:
    """The start, end and step parameters of a range query: start and end are expr-lang
    expressions giving a time, step a Go duration."""
    start = _time(range_query.get("start"), "start")
    end = _time(range_query.get("end"), "end")
    try:
        step = parse_duration(range_query.get("step") or "").total_seconds()
    except DurationError as exc:
        raise MeasurementError(f"failed to parse rangeQuery.step as duration: {exc}") from None
    if step <= 0:
        raise MeasurementError("rangeQuery.step must be a positive duration")
    # Prometheus takes a step in seconds, fractions too.
    return {
        "start": _unix(start),
        "end": _unix(end),
        "step": str(int(step) if step.is_integer() else step),
    }


def _time(source, field: str) -> datetime:
    if not isinstance(source, str) or not source.strip():
        raise MeasurementError(f"rangeQuery.{field} is not configured")
    try:
        value = evaluate(source)
    except ExpressionError as exc:
        raise MeasurementError(f"failed to parse rangeQuery.{field} as time: {exc}") from None
    if not isinstance(value, datetime):
        raise MeasurementError(
            f"failed to parse rangeQuery.{field} as time: expected a time, got {type_name(value)}"
        )
    return value


def _unix(moment: datetime) -> str:
    # A naive time is taken as UTC, as the expression engine does.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Prometheus keeps milliseconds.
    return f"{math.floor(moment.timestamp() * 1000) / 1000:.3f}"


def _excerpt(body: bytes, prefix: str) -> str:
    text = " ".join(body[: BODY_EXCERPT_CHARS * 4].decode("utf-8", errors="replace").split())
    if not text:
        return ""
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "..."
    return prefix + redact(text)
