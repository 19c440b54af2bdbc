"""The `web` metric (argo-rollouts metricproviders/webmetric): one HTTP request; a JSON answer's
value at `jsonPath` (Kubernetes JSONPath, `{$.data.ok}`; default the whole body) is the result,
a body that is not JSON is its text. A status outside 2xx is an Error measurement, as in Argo."""

import json
from base64 import b64encode
from functools import lru_cache

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from projects.egress import OutboundNotAllowed
from projects.outbound import OutboundError, Request, send

from . import Measured, MeasurementError, provider

DEFAULT_TIMEOUT_SECONDS = 10
MAX_JSONPATH = 1024


def jsonpath_value(path: str, data):
    """The value at a Kubernetes JSONPath (`{$.a.b}` or `$.a.b`): one match gives the value,
    several give a list."""
    expression = path.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1].strip()
    if len(expression) > MAX_JSONPATH:
        raise MeasurementError(f"jsonPath is longer than {MAX_JSONPATH} characters")
    try:
        matches = [m.value for m in compiled_jsonpath(expression).find(data)]
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        # jsonpath-ng raises plain Exception for some syntax errors.
        raise MeasurementError(f"invalid jsonPath {path!r}: {exc}") from None
    if not matches:
        raise MeasurementError(f"could not find JSONPath {path!r} in body")
    return matches[0] if len(matches) == 1 else matches


@lru_cache(maxsize=256)
def compiled_jsonpath(expression: str):
    """Parsing a JSONPath builds its grammar's parser: done once per expression."""
    return parse_jsonpath(expression)


@provider("web")
def measure(config: dict, timeout: float) -> Measured:
    method = (config.get("method") or "GET").upper()
    if method not in ("GET", "POST", "PUT"):
        raise MeasurementError(f"method {method!r} is not supported (GET, POST or PUT)")
    headers = {h["key"]: h["value"] for h in config.get("headers") or []}
    body, json_body = config.get("body"), config.get("jsonBody")
    if body is not None and json_body is not None:
        raise MeasurementError("use either body or jsonBody, not both")
    if (body or json_body is not None) and method == "GET":
        raise MeasurementError("a body is not allowed with method GET")
    content = None
    if json_body is not None:
        content = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif body:
        content = body.encode()
    auth = config.get("authentication") or {}
    if auth.get("basicAuth"):
        basic = auth["basicAuth"]
        token = f"{basic.get('username') or ''}:{basic.get('password') or ''}".encode()
        headers["Authorization"] = "Basic " + b64encode(token).decode()
    elif auth.get("oauth2") or auth.get("sigv4"):
        raise MeasurementError("oauth2 and sigv4 authentication are not supported by this server")
    seconds = config.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
    request = Request(
        method,
        config["url"],
        headers,
        content,
        timeout=min(float(seconds), timeout),
        insecure=bool(config.get("insecure")),
    )
    try:
        answer = send(request)
    except (OutboundError, OutboundNotAllowed) as exc:
        raise MeasurementError(str(exc)) from None
    if not 200 <= answer.status < 300:
        raise MeasurementError(f"received non 2xx response code: {answer.status}")
    if not answer.body:
        return Measured("")
    try:
        data = json.loads(answer.body)
    except ValueError:
        return Measured(answer.text)
    return Measured(jsonpath_value(config.get("jsonPath") or "{$}", data))
