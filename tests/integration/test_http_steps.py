"""The http and http-download steps against real HTTP servers on loopback: Kargo's outcomes
(success/failure expressions, non-2xx, polling), timeouts, the egress policy (loopback refused
unless allowed, redirects re-checked) and the size caps."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stages.steps import StepError, http_download, http_request

from .test_steps import make_ctx, run


class Server:
    """A loopback server: path -> handler(request) -> (status, headers, body); records requests."""

    def __init__(self):
        self.routes: dict = {}
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
                outer.seen.append(request)
                route = outer.routes.get(self.path.split("?")[0], (404, {}, b"not found"))
                status, headers, payload = route(request) if callable(route) else route
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(settings, monkeypatch):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True
    monkeypatch.setattr(http_request, "MIN_POLL_SECONDS", 0.01)
    s = Server()
    yield s
    s.close()


def as_json(value) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(value).encode()


# --- http --------------------------------------------------------------------------------------


def test_request_options_and_outputs_from_the_response(tmp_path, server):
    server.routes["/api"] = (
        201,
        {"Content-Type": "application/json; charset=utf-8", "X-Build": "42"},
        b'{"id": 7, "items": [{"name": "a"}]}',
    )
    ctx = make_ctx(tmp_path)
    result = run(
        ctx,
        "http",
        {
            "method": "POST",
            "url": f"{server.url}/api?z=1",
            "headers": [
                {"name": "Authorization", "value": "Bearer t"},
                {"name": "X-Multi", "value": "a"},
                {"name": "X-Multi", "value": "b"},
            ],
            "queryParams": [{"name": "b", "value": "x y"}, {"name": "a", "value": "1"}],
            "body": '{"hello": "world"}',
            "successExpression": "response.status == 201",
            "outputs": [
                {"name": "status", "fromExpression": "response.status"},
                {"name": "id", "fromExpression": "response.body.id"},
                {"name": "first", "fromExpression": "response.body.items[0].name"},
                {"name": "build", "fromExpression": "response.header('x-build')"},
                {"name": "builds", "fromExpression": "response.headers['X-Build']"},
                {"name": "missing", "fromExpression": "response.header('nope')"},
            ],
        },
    )
    assert result.status == "Succeeded"
    assert result.outputs == {
        "status": 201,
        "id": 7,
        "first": "a",
        "build": "42",
        "builds": ["42"],
        "missing": "",
    }
    [request] = server.seen
    assert request["method"] == "POST"
    # Go's url.Values.Encode: the whole query sorted by name.
    assert request["path"] == "/api?a=1&b=x+y&z=1"
    assert request["headers"]["Authorization"] == "Bearer t"
    assert request["headers"]["X-Multi"] == "a, b"
    assert request["body"] == b'{"hello": "world"}'


def test_body_parsing_by_content_type(tmp_path, server):
    server.routes["/yaml"] = (200, {"Content-Type": "application/yaml"}, b"a:\n  b: [1, 2]\n")
    server.routes["/text"] = (200, {"Content-Type": "text/plain"}, b'{"looks": "json"}')
    server.routes["/html"] = (200, {"Content-Type": "text/html"}, b"<p>hi</p>")
    server.routes["/bad-json"] = (200, {"Content-Type": "application/json"}, b"{nope")
    ctx = make_ctx(tmp_path)

    def body_of(path, **extra):
        config = {
            "url": server.url + path,
            "outputs": [{"name": "b", "fromExpression": "response.body"}],
        }
        return run(ctx, "http", {**config, **extra}).outputs["b"]

    assert body_of("/yaml") == {"a": {"b": [1, 2]}}
    assert body_of("/text") == '{"looks": "json"}'
    assert body_of("/html") == {}  # another type that is not JSON: left out
    assert body_of("/text", responseContentType="application/json") == {"looks": "json"}
    with pytest.raises(StepError, match="failed to parse JSON response"):
        body_of("/bad-json")


def test_failure_expression_fails_with_the_extracted_message(tmp_path, server):
    server.routes["/deploy"] = (
        409,
        {"Content-Type": "application/json"},
        b'{"error": "locked by ops"}',
    )
    ctx = make_ctx(tmp_path)
    config = {
        "url": f"{server.url}/deploy",
        "successExpression": "response.status == 200",
        "failureExpression": "response.status >= 400",
    }
    result = run(ctx, "http", config)
    assert (result.status, result.message) == (
        "Failed",
        "HTTP (409) response met failure criteria",
    )
    result = run(ctx, "http", {**config, "errorExpression": "response.body.error"})
    assert result.message == 'HTTP (409) response met failure criteria: "locked by ops"'
    # An error expression that finds nothing leaves the plain message.
    result = run(ctx, "http", {**config, "errorExpression": "response.body.nope ?? nil"})
    assert result.message == "HTTP (409) response met failure criteria"


def test_success_and_failure_both_true_is_a_failure(tmp_path, server):
    server.routes["/x"] = as_json({})
    result = run(
        make_ctx(tmp_path),
        "http",
        {"url": f"{server.url}/x", "successExpression": "true", "failureExpression": "true"},
    )
    assert result.status == "Failed"


def test_expression_errors_are_step_errors(tmp_path, server):
    server.routes["/x"] = as_json({"n": 1})
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="did not evaluate to a boolean"):
        run(ctx, "http", {"url": f"{server.url}/x", "successExpression": "response.body.n"})
    with pytest.raises(StepError, match="error compiling success expression"):
        run(ctx, "http", {"url": f"{server.url}/x", "successExpression": "(1 +"})


def test_without_criteria_2xx_succeeds_and_non_2xx_is_retried(tmp_path, server, monkeypatch):
    answers = iter([(503, {}, b"busy"), (503, {}, b"busy"), (204, {}, b"")])
    server.routes["/flaky"] = lambda request: next(answers)
    ctx = make_ctx(tmp_path)
    result = run(ctx, "http", {"url": f"{server.url}/flaky", "pollInterval": "10ms"})
    assert result.status == "Succeeded"
    assert len(server.seen) == 3

    # Never 2xx: retried until the step's wait ends, then Errored with the last answer.
    monkeypatch.setattr(http_request, "POLL_LIMIT", http_request.timedelta(seconds=0.3))
    server.routes["/down"] = (500, {}, b"")
    started = time.monotonic()
    with pytest.raises(StepError, match=r"the answer was HTTP 500, not 2xx"):
        run(ctx, "http", {"url": f"{server.url}/down", "pollInterval": "50ms"})
    assert time.monotonic() - started < 5


def test_unmet_criteria_poll_until_met(tmp_path, server):
    states = iter(["pending", "pending", "done"])
    server.routes["/job"] = lambda request: as_json({"state": next(states)})
    result = run(
        make_ctx(tmp_path),
        "http",
        {
            "url": f"{server.url}/job",
            "pollInterval": "10ms",
            "successExpression": "response.body.state == 'done'",
            "failureExpression": "response.body.state == 'failed'",
            "outputs": [{"name": "state", "fromExpression": "response.body.state"}],
        },
    )
    assert (result.status, result.outputs) == ("Succeeded", {"state": "done"})
    assert len(server.seen) == 3


def test_timeout(tmp_path, server):
    def slow(request):
        time.sleep(1.5)
        return as_json({})

    server.routes["/slow"] = slow
    started = time.monotonic()
    with pytest.raises(StepError, match="timed out"):
        run(make_ctx(tmp_path), "http", {"url": f"{server.url}/slow", "timeout": "200ms"})
    assert time.monotonic() - started < 1.4


def test_loopback_is_refused_unless_allowed(tmp_path, server, settings):
    server.routes["/x"] = as_json({})
    settings.EGRESS_ALLOW_LOCAL = False
    with pytest.raises(StepError, match="not allowed by this server's egress policy"):
        run(make_ctx(tmp_path), "http", {"url": f"{server.url}/x"})
    assert server.seen == []
    settings.EGRESS_ALLOW = ["127.0.0.1"]  # the operator's allow list names it
    assert run(make_ctx(tmp_path, "w2"), "http", {"url": f"{server.url}/x"}).status == "Succeeded"


def test_redirects_are_re_checked(tmp_path, server, settings):
    port = server.httpd.server_address[1]
    server.routes["/go"] = (302, {"Location": f"http://localhost:{port}/x"}, b"")
    server.routes["/x"] = as_json({})
    settings.EGRESS_DENY = ["localhost"]
    with pytest.raises(StepError, match="'localhost' are not allowed"):
        run(make_ctx(tmp_path), "http", {"url": f"{server.url}/go"})
    assert [r["path"] for r in server.seen] == ["/go"]


def test_response_size_cap(tmp_path, server, monkeypatch):
    monkeypatch.setattr(http_request, "MAX_RESPONSE_BYTES", 1000)
    server.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"x" * 1001)
    with pytest.raises(StepError, match="larger than 1000 bytes"):
        run(make_ctx(tmp_path), "http", {"url": f"{server.url}/big"})


def test_body_from_file_stays_in_the_work_dir(tmp_path, server):
    server.routes["/echo"] = lambda request: (200, {"Content-Type": "text/plain"}, request["body"])
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "payload.json").write_text('{"a": 1}')
    config = {
        "method": "PUT",
        "url": f"{server.url}/echo",
        "bodyFromFile": "payload.json",
        "outputs": [{"name": "echo", "fromExpression": "response.body"}],
    }
    assert run(ctx, "http", config).outputs == {"echo": '{"a": 1}'}
    (tmp_path / "secret").write_text("s3cret")
    (ctx.work_dir / "link").symlink_to(tmp_path / "secret")
    for path in ("../secret", "link", str(tmp_path / "secret")):
        with pytest.raises(StepError, match="escapes the work directory"):
            run(ctx, "http", {**config, "bodyFromFile": path})
    assert all(r["body"] != b"s3cret" for r in server.seen)


def test_proxy_is_refused(tmp_path, server):
    with pytest.raises(StepError, match="proxy is not supported"):
        run(make_ctx(tmp_path), "http", {"url": f"{server.url}/x", "proxy": "http://p:3128"})


# --- http-download ---------------------------------------------------------------------------


def test_download_into_the_work_dir(tmp_path, server):
    server.routes["/chart.tgz"] = lambda request: (
        200,
        {},
        b"v1" if "v=1" in request["path"] else b"v2",
    )
    ctx = make_ctx(tmp_path)
    config = {
        "url": f"{server.url}/chart.tgz",
        "outPath": "charts/app/chart.tgz",
        "queryParams": [{"name": "v", "value": "1"}],
        "headers": [{"name": "Authorization", "value": "Bearer t"}],
    }
    assert run(ctx, "http-download", config).status == "Succeeded"
    target = ctx.work_dir / "charts" / "app" / "chart.tgz"
    assert target.read_bytes() == b"v1"
    assert server.seen[0]["headers"]["Authorization"] == "Bearer t"
    # An existing file is kept unless allowOverwrite.
    config["queryParams"] = [{"name": "v", "value": "2"}]
    with pytest.raises(StepError, match="already exists .* overwrite is not allowed"):
        run(ctx, "http-download", config)
    assert target.read_bytes() == b"v1"
    assert run(ctx, "http-download", {**config, "allowOverwrite": True}).status == "Succeeded"
    assert target.read_bytes() == b"v2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["chart.tgz"]  # no temp left


def test_download_non_2xx_fails_and_writes_nothing(tmp_path, server):
    ctx = make_ctx(tmp_path)
    result = run(ctx, "http-download", {"url": f"{server.url}/missing", "outPath": "f.bin"})
    assert (result.status, result.message) == ("Failed", "HTTP request failed with status 404")
    assert list(ctx.work_dir.iterdir()) == []


def test_download_size_cap_leaves_no_file(tmp_path, server, monkeypatch):
    monkeypatch.setattr(http_download, "MAX_DOWNLOAD_BYTES", 10_000)
    server.routes["/big"] = (200, {}, b"x" * 10_001)
    server.routes["/fits"] = (200, {}, b"x" * 10_000)
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="download exceeds limit of 10000 bytes"):
        run(ctx, "http-download", {"url": f"{server.url}/big", "outPath": "big.bin"})
    assert list(ctx.work_dir.iterdir()) == []
    run(ctx, "http-download", {"url": f"{server.url}/fits", "outPath": "fits.bin"})
    assert (ctx.work_dir / "fits.bin").stat().st_size == 10_000


def test_download_out_path_cannot_leave_the_work_dir(tmp_path, server):
    server.routes["/f"] = (200, {}, b"payload")
    ctx = make_ctx(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (ctx.work_dir / "out").symlink_to(outside)
    (ctx.work_dir / "file-link").symlink_to(outside / "victim")
    for path in ("../escaped", "out/f", str(outside / "f")):
        with pytest.raises(StepError, match="escapes the work directory"):
            run(ctx, "http-download", {"url": f"{server.url}/f", "outPath": path})
    # A link inside pointing out is refused even with allowOverwrite (the guard resolves it).
    with pytest.raises(StepError, match="escapes the work directory"):
        run(
            ctx,
            "http-download",
            {"url": f"{server.url}/f", "outPath": "file-link", "allowOverwrite": True},
        )
    assert list(outside.iterdir()) == []
    assert server.seen == []


def test_download_loopback_refused_unless_allowed(tmp_path, server, settings):
    settings.EGRESS_ALLOW_LOCAL = False
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="egress policy"):
        run(ctx, "http-download", {"url": f"{server.url}/f", "outPath": "f"})
    assert list(ctx.work_dir.iterdir()) == []
