"""http: send an HTTP request and judge its answer (Kargo's http_requester.go).

The expressions `successExpression`, `failureExpression`, `errorExpression` and each output's
`fromExpression` are plain expr-lang (no `${{ }}`), evaluated against the answer only:

    response.status      the status code (an int)
    response.headers     {Canonical-Name: [values]}, as Go's http.Header
    response.header(n)   the first value of header n ("" when absent), as Header.Get
    response.body        the body parsed by its Content-Type (or `responseContentType`): JSON
                         (the fallback for any other type, left {} when it is not JSON), YAML,
                         or text/plain as a string; {} when the body is empty

The outcome is Kargo's:
- failure expression true: Failed, "HTTP (<status>) response met failure criteria"
  (with `: "<message>"` when errorExpression gives a string);
- success expression true: Succeeded, with the outputs;
- neither expression set: a 2xx succeeds, anything else is retried;
- otherwise (criteria not met yet): retried after `pollInterval` (default 30s).

Deviation: this engine has no Running steps yet, so the step itself waits and sends again, at
most for POLL_LIMIT; then it ends Errored saying the criteria were not met in time (Kargo's
controller requeues the promotion instead, until the step's retry.timeout).
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from kargo import jsonio, yamlio
from kargo.expressions import ExpressionError, compile_expression
from projects.outbound import Answer, Request

from ._http import Duration, NameValue, duration, header_map, send_request, with_query
from .base import Step, StepContext, StepError, StepModel, StepResult, register

MAX_RESPONSE_BYTES = 2 << 20  # Kargo's maxResponseBytes; also the limit for bodyFromFile
DEFAULT_TIMEOUT = timedelta(seconds=10)
DEFAULT_POLL_INTERVAL = timedelta(seconds=30)
MIN_POLL_SECONDS = 10.0  # Kargo's controller never requeues sooner
POLL_LIMIT = timedelta(minutes=5)  # how long the step waits in place for its criteria

CONTENT_TYPES = {
    "application/json": "json",
    "application/yaml": "yaml",
    "text/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/plain": "text",
}


class HTTPOutput(StepModel):
    name: str = Field(min_length=1)
    fromExpression: str = Field(min_length=1)


class HTTPConfig(StepModel):
    # Optional fields default to None but are typed without it: an explicit null is refused,
    # as Kargo's schema refuses it.
    method: Literal["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"] = None
    url: str = Field(min_length=1)
    headers: list[NameValue] = None
    queryParams: list[NameValue] = None
    body: str = None
    bodyFromFile: str = Field(None, min_length=1)
    insecureSkipTLSVerify: bool = None
    proxy: str = Field(None, pattern=r"^https?://.*$")
    timeout: Duration = None
    pollInterval: Duration = None
    responseContentType: Literal["application/json", "application/yaml", "text/plain"] = None
    outputs: list[HTTPOutput] = None
    successExpression: str = None
    failureExpression: str = None
    errorExpression: str = None

    @model_validator(mode="after")
    def _one_body(self) -> HTTPConfig:
        if self.body and self.bodyFromFile:
            raise ValueError("body and bodyFromFile are mutually exclusive")
        return self


# --- the answer as the expressions see it -------------------------------------------------


def canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: content-type -> Content-Type."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def parse_body(body: bytes, content_type: str) -> Any:
    if not body:
        return {}
    mode = CONTENT_TYPES.get(content_type.lower(), "json")
    try:
        if mode == "text":
            return body.decode("utf-8", errors="replace")
        if mode == "yaml":
            return yamlio.load(body.decode("utf-8"))
        try:
            return jsonio.loads(body)
        except ValueError:
            if content_type == "application/json":
                raise
            return {}  # another type, and not JSON: the body is left out, as Kargo does
    except (ValueError, yamlio.YAMLSyntaxError) as exc:
        raise StepError(f"failed to parse {mode.upper()} response: {exc}") from None


def response_env(answer: Answer, content_type_override: str | None) -> dict:
    headers = {canonical(k): [v] for k, v in answer.headers.items()}

    def header(name: str) -> str:
        values = headers.get(canonical(str(name)))
        return values[0] if values else ""

    content_type = content_type_override or media_type(answer.headers.get("content-type", ""))
    return {
        "response": {
            "status": answer.status,
            "header": header,
            "headers": headers,
            "body": parse_body(answer.body, content_type),
        }
    }


def evaluate(kind: str, source: str, env: dict) -> Any:
    try:
        program = compile_expression(source)
    except ExpressionError as exc:
        raise StepError(f"error compiling {kind} {source!r}: {exc}") from None
    try:
        return program.evaluate(env)
    except ExpressionError as exc:
        raise StepError(f"error evaluating {kind} {source!r}: {exc}") from None


def criterion(kind: str, source: str | None, env: dict) -> bool | None:
    if not source:
        return None
    value = evaluate(f"{kind} expression", source, env)
    if not isinstance(value, bool):
        raise StepError(f"{kind} expression {source!r} did not evaluate to a boolean")
    return value


def judge(config: HTTPConfig, answer: Answer, env: dict) -> StepResult | None:
    """The step's outcome for one answer; None: not decided yet (wait and send again)."""
    success = criterion("success", config.successExpression, env)
    failure = criterion("failure", config.failureExpression, env)
    if failure:
        message = f"HTTP ({answer.status}) response met failure criteria"
        if config.errorExpression:
            try:
                program = compile_expression(config.errorExpression)
            except ExpressionError as exc:
                raise StepError(
                    f"error compiling error expression {config.errorExpression!r}: {exc}"
                ) from None
            try:
                extracted = program.evaluate(env)
            except ExpressionError:
                extracted = None  # best effort, as Kargo: the default message stands
            if isinstance(extracted, str) and extracted:
                message += f": {json.dumps(extracted, ensure_ascii=False)}"
        return StepResult(status="Failed", message=message)
    if success or (success is None and failure is None and 200 <= answer.status < 300):
        outputs = {
            o.name: evaluate(f"output expression {o.name!r}:", o.fromExpression, env)
            for o in config.outputs or []
        }
        return StepResult(outputs=outputs)
    return None


# --- the step --------------------------------------------------------------------------------


def read_body_file(ctx: StepContext, rel: str) -> bytes:
    path = ctx.path(rel)
    try:
        # O_NOFOLLOW: a link put at the last component after the guard's check is not followed.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise StepError(f"could not read bodyFromFile {rel!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        raise StepError(
            f"could not read bodyFromFile {rel!r}: content exceeds limit of "
            f"{MAX_RESPONSE_BYTES} bytes"
        )
    return data


@register
class HTTPStep(Step):
    name = "http"
    Config = HTTPConfig

    def run(self, ctx: StepContext, config: HTTPConfig) -> StepResult:
        if config.proxy:
            # A proxy would carry the request past the egress policy, which checks the URL's host.
            raise StepError("proxy is not supported by this server: requests go out directly")
        timeout = duration(config.timeout, DEFAULT_TIMEOUT, "timeout")
        interval = duration(config.pollInterval, DEFAULT_POLL_INTERVAL, "pollInterval")
        body = read_body_file(ctx, config.bodyFromFile) if config.bodyFromFile else None
        if body is None and config.body:
            body = config.body.encode("utf-8")
        request = Request(
            method=config.method or "GET",
            url=with_query(config.url, config.queryParams),
            headers=header_map(config.headers),
            body=body,
            timeout=timeout.total_seconds(),
            insecure=bool(config.insecureSkipTLSVerify),
            max_bytes=MAX_RESPONSE_BYTES,
        )
        deadline = time.monotonic() + POLL_LIMIT.total_seconds()
        while True:
            answer = send_request(request)
            result = judge(config, answer, response_env(answer, config.responseContentType))
            if result is not None:
                return result
            pause = max(interval.total_seconds(), MIN_POLL_SECONDS)
            if time.monotonic() + pause > deadline:
                unmet = (
                    "its success or failure criteria were not met"
                    if config.successExpression or config.failureExpression
                    else f"the answer was HTTP {answer.status}, not 2xx"
                )
                raise StepError(
                    f"{unmet} within {int(POLL_LIMIT.total_seconds())}s "
                    f"(last answer: HTTP {answer.status})"
                )
            time.sleep(pause)
