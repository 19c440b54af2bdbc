"""The one HTTP client for requests the server makes on a user's behalf (verification metrics,
and HTTP steps and registries as they arrive). Every request, and every redirect it follows, is
checked by the egress policy (projects.egress) first; every answer is read with a time and size
budget, so a slow or huge response cannot hold a worker or fill its memory.
"""

import ssl
from dataclasses import dataclass, field
from functools import cache
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

from .egress import check_outbound

MAX_REDIRECTS = 5
MAX_BODY_BYTES = 4 * 1024 * 1024
REDIRECT_CODES = {301, 302, 303, 307, 308}
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie"}


class OutboundError(Exception):
    """The request could not be made or answered within its budget; the message says why
    (and never carries the request's headers, which may hold credentials)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = 10.0
    insecure: bool = False
    max_bytes: int = MAX_BODY_BYTES
    # When set, a 2xx answer's body is written here as it arrives (still capped by max_bytes)
    # instead of being held in memory: downloads. Other answers are read as usual.
    sink: BinaryIO | None = None


@cache
def tls_context(insecure: bool) -> ssl.SSLContext:
    """One TLS context per kind, made once: loading the CA bundle costs tens of milliseconds,
    which a client made per request would pay every time (bench_verification)."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=certifi.where())


def send(request: Request) -> Answer:
    """Send `request`, following up to MAX_REDIRECTS redirects (each one re-checked by the egress
    policy; a 303, or a 301/302 of a POST, becomes a GET without body, as browsers do)."""
    method, url, body = request.method.upper(), request.url, request.body
    headers = dict(request.headers)
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise OutboundError(f"unsupported URL scheme {scheme or '(none)'!r}: use http or https")
    # trust_env off: the server's proxy variables and ~/.netrc are not the user's to use.
    with httpx.Client(
        verify=tls_context(request.insecure),
        timeout=request.timeout,
        follow_redirects=False,
        trust_env=False,
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_outbound(url)
            answer = _send_once(client, method, url, headers, body, request.max_bytes, request.sink)
            if answer.status not in REDIRECT_CODES or "location" not in answer.headers:
                return answer
            target = urljoin(url, answer.headers["location"])
            if urlsplit(target).scheme not in ("http", "https"):
                raise OutboundError("redirected to a URL that is not http or https")
            if _origin(target) != _origin(url):
                # Credentials are for the host they were given for, as browsers and requests
                # do: a registry redirecting blobs to a CDN must not hand it the password.
                headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
            url = target
            if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                method, body = "GET", None
    raise OutboundError(f"more than {MAX_REDIRECTS} redirects")


def _send_once(
    client: httpx.Client,
    method: str,
    url: str,
    headers: dict,
    body: bytes | None,
    max_bytes: int,
    sink: BinaryIO | None = None,
) -> Answer:
    try:
        with client.stream(method, url, headers=headers, content=body) as response:
            chunks, size = [], 0
            streamed = sink is not None and 200 <= response.status_code < 300
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise OutboundError(f"response larger than {max_bytes} bytes")
                if streamed:
                    sink.write(chunk)
                else:
                    chunks.append(chunk)
            return Answer(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                b"".join(chunks),
                str(response.url),
            )
    except httpx.TimeoutException:
        raise OutboundError(f"request to {_where(url)} timed out") from None
    except httpx.InvalidURL as exc:
        raise OutboundError(f"invalid URL: {exc}") from None
    except httpx.LocalProtocolError:
        # h11 quotes the offending header, and headers may hold credentials.
        raise OutboundError(
            f"request to {_where(url)} failed: a header is not valid HTTP"
        ) from None
    except UnicodeEncodeError:
        raise OutboundError(
            f"request to {_where(url)} failed: header names and values must be ASCII"
        ) from None
    except httpx.HTTPError as exc:
        detail = str(exc)[:200] or type(exc).__name__
        raise OutboundError(f"request to {_where(url)} failed: {detail}") from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _where(url: str) -> str:
    """The URL without credentials or query (either may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
