"""The one outbound HTTP client (projects/outbound.py) against real servers on loopback:
redirects are followed and re-checked, credentials never follow a redirect to another host."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from projects.outbound import OutboundError, Request, send


def server(routes: dict, seen: list):
    """A loopback server: path -> (status, headers); records (path, Authorization)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(
                (self.server.server_address[1], self.path, self.headers.get("Authorization"))
            )
            status, headers = routes.get(self.path, (200, {}))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def servers(settings):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True
    seen, routes_a, routes_b = [], {}, {}
    a, b = server(routes_a, seen), server(routes_b, seen)
    yield a, b, routes_a, seen
    for httpd in (a, b):
        httpd.shutdown()
        httpd.server_close()


def test_a_redirect_to_another_host_drops_the_credentials(servers):
    a, b, routes_a, seen = servers
    port_a, port_b = a.server_address[1], b.server_address[1]
    routes_a["/same"] = (302, {"Location": "/final"})
    routes_a["/away"] = (307, {"Location": f"http://127.0.0.1:{port_b}/blob"})
    auth = {"Authorization": "Basic c2VjcmV0"}
    assert send(Request("GET", f"http://127.0.0.1:{port_a}/same", auth)).text == "ok"
    assert send(Request("GET", f"http://127.0.0.1:{port_a}/away", auth)).text == "ok"
    assert seen == [
        (port_a, "/same", "Basic c2VjcmV0"),
        (port_a, "/final", "Basic c2VjcmV0"),  # the same host keeps them
        (port_a, "/away", "Basic c2VjcmV0"),
        (port_b, "/blob", None),  # another host does not get them
    ]


def test_redirect_loops_and_non_http_targets_are_refused(servers):
    a, _, routes_a, _ = servers
    port = a.server_address[1]
    routes_a["/loop"] = (302, {"Location": "/loop"})
    routes_a["/ftp"] = (302, {"Location": "ftp://127.0.0.1/x"})
    with pytest.raises(OutboundError, match="more than 5 redirects"):
        send(Request("GET", f"http://127.0.0.1:{port}/loop"))
    with pytest.raises(OutboundError, match="not http or https"):
        send(Request("GET", f"http://127.0.0.1:{port}/ftp"))
