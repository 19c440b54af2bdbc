"""Requests that used to answer 500 (or raise in the server): each is now a clear 4xx, for
anonymous visitors too."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.test import Client

from kargo_ui.asgi import application

FORM = b"username=alice&password=secret"
# A CSRF secret as the login page sets it in its cookie; Django accepts it back, unmasked, in
# the X-CSRFToken header.
CSRF_SECRET = "k" * 32


def anonymous_client_with_csrf_token() -> tuple[Client, str]:
    """An anonymous visitor whose CSRF cookie and header match, as a browser's do after the
    login page: the CSRF check is enforced and passes, so it goes on to read the body."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.cookies["csrftoken"] = CSRF_SECRET
    return client, CSRF_SECRET


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type, reason",
    [
        ("application/x-www-form-urlencoded; charset=utf-16", "form data must be UTF-8"),
        ("application/x-www-form-urlencoded; charset=latin-1", "form data must be UTF-8"),
        ("application/x-www-form-urlencoded; charset=no-such-charset", "unsupported charset"),
        ("application/x-www-form-urlencoded; charset=base64", "unsupported charset"),
        ("multipart/form-data; boundary=x; charset=rot13", "unsupported charset"),
        ("text/plain; charset=zlib", "unsupported charset"),
    ],
)
def test_a_login_post_in_an_undecodable_charset_is_a_400(content_type, reason):
    client, token = anonymous_client_with_csrf_token()
    # generic(): the client's post() would itself try to encode the body in that charset.
    response = client.generic(
        "POST", "/login/", FORM, content_type=content_type, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 400
    assert reason in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["", "; charset=UTF-8", "; charset=utf-8"])
def test_a_form_in_utf_8_still_goes_through(users, charset):
    client, token = anonymous_client_with_csrf_token()
    client.force_login(users["alice"])
    response = client.generic(
        "POST",
        "/logout/",
        b"next=/login/",
        content_type="application/x-www-form-urlencoded" + charset,
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session  # the view ran: alice is signed out


def http_through_asgi(method: str, path: str, content_type: bytes) -> dict:
    """The request as daphne hands it to kargo_ui.asgi.application (the Django test client
    builds its requests itself, past the ASGI layer)."""
    communicator = HttpCommunicator(
        application,
        method,
        path,
        body=FORM,
        headers=[(b"host", b"localhost"), (b"content-type", content_type)],
    )
    return async_to_sync(communicator.get_response)()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type, reason",
    [
        # Django decodes the query string in this "charset" while it builds the request, before
        # any middleware runs: it used to raise LookupError there.
        (b"text/plain; charset=base64", b"unsupported charset 'base64'"),
        (b"application/x-www-form-urlencoded; charset=rot13", b"unsupported charset 'rot13'"),
        (b"application/x-www-form-urlencoded; charset=utf-16", b"form data must be UTF-8"),
        # Too long for Django to parse: it used to raise BadRequest outside its handler.
        (b"text/plain; a=" + b"x" * 12_000, b"invalid Content-Type header"),
    ],
)
def test_the_asgi_application_refuses_what_django_cannot_build_a_request_from(content_type, reason):
    for method in ("GET", "POST"):
        response = http_through_asgi(method, "/login/?next=/projects/", content_type)
        assert response["status"] == 400
        assert reason in response["body"]


@pytest.mark.django_db
def test_the_asgi_application_still_serves_ordinary_requests():
    response = http_through_asgi("GET", "/?page=1", b"text/plain; charset=utf-8")
    assert response["status"] == 302  # to the login page, as for any anonymous visitor
    headers = {name.lower(): value for name, value in response["headers"]}
    assert headers[b"location"] == b"/login/?next=/%3Fpage%3D1"


async def handshake(path: str, origin: bytes = b"http://localhost") -> tuple[bool, int | None]:
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"host", b"localhost"), (b"origin", origin)]
    )
    connected, code = await communicator.connect(timeout=5)
    # The application ends when the client goes, and re-raises here what it raised, if it did
    # (as "No route found" used to be raised, from connect() itself).
    await communicator.disconnect(timeout=5)
    return connected, code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", ["/ws/nope/", "/ws/project/", "/ws/project/a/b/", "/anything", "/", "/ws/project"]
)
def test_a_websocket_to_an_unrouted_path_is_refused_at_the_handshake(path):
    # Refused before accept, which daphne answers with HTTP 403; it used to raise
    # "No route found" inside the server (a 500).
    assert async_to_sync(handshake)(path) == (False, 4404)


@pytest.mark.django_db(transaction=True)
def test_a_routed_websocket_still_checks_its_project_and_origin():
    assert async_to_sync(handshake)("/ws/project/kargo-demo/") == (False, 4403)
    assert async_to_sync(handshake)("/ws/nope/", origin=b"http://evil.example") == (False, 1000)
