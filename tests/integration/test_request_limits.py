"""The start of a request has a budget under `manage.py serve` (daphne on twisted): a request
line over 16 KiB is answered 414, oversized headers 431, where twisted dropped the connection or
said a bare 400; an unrouted websocket is refused with 403, where it raised in the server. The
server goes on serving after each."""

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.e2e.servers import (
    ServerError,
    ServerProcess,
    embedded_env,
    free_port,
    manage,
    serve_argv,
)

HOST = b"Host: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def port():
    data_dir = Path(tempfile.mkdtemp(prefix="kargo-request-limits-"))
    env = embedded_env(data_dir)
    port = free_port()
    proc = None
    try:
        manage(env, "migrate", "--noinput")
        proc = ServerProcess("serve", [*serve_argv(port), "--no-worker"], env, data_dir)
        proc.wait_for_log("serving on", timeout=60)
        proc.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        yield port
        assert "Traceback" not in proc.log(), proc.tail()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` whole, then read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"Connection: close" not in answer and b"\r\n\r\n" in answer:
                break  # a kept-alive answer: its head is enough here
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("path_size", [20_000, 1_000_000])
def test_a_request_line_over_16_kib_is_414(port, path_size):
    answer = exchange(port, b"GET /" + b"a" * path_size + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    assert status_of(answer) == 414
    assert b"the request line is over 16384 bytes" in answer


def test_a_request_line_within_the_limit_is_served(port):
    answer = exchange(port, b"GET /" + b"a" * 15_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    assert status_of(answer) == 404


@pytest.mark.parametrize(
    "headers, detail",
    [
        (b"X-Big: " + b"b" * 20_000 + b"\r\n", b"a header line is over 16384 bytes"),
        (
            b"".join(b"X-%d: %s\r\n" % (i, b"c" * 1000) for i in range(40)),
            b"the request line and headers are over 32768 bytes",
        ),
        (b"".join(b"X-%d: c\r\n" % i for i in range(600)), b"more than 500 headers"),
    ],
)
def test_oversized_headers_are_431(port, headers, detail):
    answer = exchange(port, b"GET / HTTP/1.1\r\n" + HOST + headers + b"\r\n")
    assert status_of(answer) == 431
    assert detail in answer


def test_a_websocket_to_an_unrouted_path_is_403(port):
    handshake = (
        b"GET /ws/nope/ HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: http://127.0.0.1\r\n\r\n"
    )
    assert status_of(exchange(port, handshake)) == 403


def test_the_server_serves_on_after_refusing(port):
    exchange(port, b"GET /" + b"a" * 50_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    answer = exchange(port, b"GET /healthz HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
    assert status_of(answer) == 200
