"""The live-latency bench's anchor: a bare Channels echo inside the dashboard's own server.

`application` is kargo_ui.asgi's application with three routes in front of it:

- GET  /bench-echo/        a page that loads htmx and its ws extension exactly as base.html does
                           ({% htmx_script extensions="hx-ws" %}) and connects to /ws/bench-echo/;
- POST /bench-echo/send    `n=<number>`: one group_send of `<div id="echo-target" data-n=N>` to
                           the echo group, straight from the event loop (no thread, no database);
- WS   /ws/bench-echo/     a consumer that joins the group and forwards each message's HTML to
                           its page, where the ws extension swaps it out of band.

Everything else goes to the dashboard unchanged, so the product and its anchor are measured in
the same process, on the same channel layer, through the same htmx swap.

Scaled mode: `daphne bench.echo_asgi:application` (run from the checkout's root).
Embedded mode: `python bench/echo_asgi.py serve --host 127.0.0.1 --port N` runs `manage.py serve`
(daphne with the Celery worker and beat in threads) on this application instead of the plain one.

For the bench only (bench/bench_live_latency.py): no authentication, loopback servers.
"""

import html
import os
import sys
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kargo_ui.settings")

from asgiref.sync import sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402

from kargo_ui.asgi import application as kargo_application  # noqa: E402  (sets Django up)

GROUP = "bench-echo"
PAGE_PATH = "/bench-echo/"
SEND_PATH = "/bench-echo/send"
WS_PATH = "/ws/bench-echo/"


class EchoConsumer(AsyncWebsocketConsumer):
    groups = [GROUP]  # joined on connect, left on disconnect (channels does both)

    async def echo_message(self, event):
        await self.send(text_data=event["html"])


echo_consumer = EchoConsumer.as_asgi()
_page_html: bytes | None = None


def render_page() -> bytes:
    from django.template import engines

    scripts = (
        engines["django"]
        .from_string('{% load django_htmx %}{% htmx_script extensions="hx-ws" %}')
        .render({})
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>bench echo</title>"
        '<link rel="icon" href="data:,">'
        f"{scripts}</head><body>"
        f'<div hx-ext="ws" ws-connect="{WS_PATH}"><div id="echo-target" data-n="0">0</div></div>'
        "</body></html>"
    ).encode()


async def read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def respond(send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    global _page_html
    path = scope.get("path", "")
    if scope["type"] == "http" and path == PAGE_PATH:
        await read_body(receive)
        if _page_html is None:
            _page_html = await sync_to_async(render_page)()
        await respond(send, 200, _page_html, b"text/html; charset=utf-8")
        return
    if scope["type"] == "http" and path == SEND_PATH:
        if scope.get("method") != "POST":
            await read_body(receive)
            await respond(send, 405, b"POST only\n", b"text/plain")
            return
        form = parse_qs((await read_body(receive)).decode())
        n = html.escape(form.get("n", ["0"])[0])
        fragment = f'<div id="echo-target" data-n="{n}">{n}</div>'
        await get_channel_layer().group_send(GROUP, {"type": "echo.message", "html": fragment})
        await respond(send, 200, b"sent\n", b"text/plain")
        return
    if scope["type"] == "websocket" and path == WS_PATH:
        await echo_consumer(scope, receive, send)
        return
    await kargo_application(scope, receive, send)


if __name__ == "__main__":
    # `manage.py serve` with this application: its command module imported the plain one.
    from django.core.management import execute_from_command_line

    from kargo_ui.management.commands import serve

    serve.application = application
    execute_from_command_line(["manage.py", *sys.argv[1:]])
