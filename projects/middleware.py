"""A request whose declared charset cannot be decoded is a 400, before anything reads its data.

Two ways such a request used to end in a 500:
- Form data that is not UTF-8 (`application/x-www-form-urlencoded; charset=utf-16`): Django
  refuses it with a 400 when the CSRF check reads request.POST, but its 400 page checks CSRF
  again, reads request.POST again and fails again, and the client gets a 500.
- A charset that is no text codec (`charset=base64`, `rot13`, `zlib`): Django decodes the query
  string with it while it builds the request, before any middleware runs, and raises. So does
  a Content-Type header it cannot parse (over 10,000 characters).

So the same test runs twice: `refuse_undecodable_body`, a Django middleware placed before
CsrfViewMiddleware (every handler, the test client's included), and `UndecodableCharsetGuard`,
an ASGI wrapper around Django's ASGI application (kargo_ui.asgi) for the second case.
"""

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.decorators import sync_and_async_middleware
from django.utils.http import parse_header_parameters

FORM_URLENCODED = "application/x-www-form-urlencoded"


def _is_text_codec(name: str) -> bool:
    try:
        "".encode(name)  # LookupError for unknown names and for base64, rot13, zlib, ...
    except LookupError:
        return False
    return True


def undecodable_charset(content_type: str) -> str | None:
    """Why a body of this Content-Type cannot be decoded, or None when it can (or it names no
    charset)."""
    try:
        media_type, params = parse_header_parameters(content_type)
    except ValueError:  # over 10,000 characters, or an RFC 2231 parameter in no known charset
        return "invalid Content-Type header"
    charset = params.get("charset")
    if charset is None:
        return None
    if not _is_text_codec(charset):
        return f"unsupported charset {charset[:40]!r}"
    # The test Django makes before it parses form data, so it never fails later.
    if media_type == FORM_URLENCODED and charset.lower() != "utf-8":
        return f"form data must be UTF-8, not {charset[:40]!r}"
    return None


def _message(reason: str) -> bytes:
    return f"Bad request: {reason}\n".encode()


def _refusal(reason: str) -> HttpResponse:
    return HttpResponseBadRequest(_message(reason), content_type="text/plain; charset=utf-8")


@sync_and_async_middleware
def refuse_undecodable_body(get_response):
    """Django middleware: 400 for a request whose charset cannot be decoded."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            reason = undecodable_charset(request.META.get("CONTENT_TYPE", ""))
            if reason is not None:
                return _refusal(reason)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            reason = undecodable_charset(request.META.get("CONTENT_TYPE", ""))
            if reason is not None:
                return _refusal(reason)
            return get_response(request)

    return middleware


class UndecodableCharsetGuard:
    """ASGI wrapper: 400 for an HTTP request whose charset cannot be decoded, before the
    wrapped application (Django) builds a request from it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            # Several Content-Type headers reach Django joined by commas, as here.
            content_type = ",".join(
                value.decode("latin-1")
                for name, value in scope.get("headers", ())
                if name.lower() == b"content-type"
            )
            reason = undecodable_charset(content_type) if content_type else None
            if reason is not None:
                body = _message(reason)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
