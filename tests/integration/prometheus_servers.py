"""Servers for the `prometheus` metric provider's tests (test_prometheus_provider.py):

- PrometheusServer: Debian's real Prometheus (/usr/bin/prometheus) on a free loopback port,
  scraping itself every second, with its data in a temporary directory. It is never the system
  service the Debian package installs (port 9090): each test module starts its own.
- CannedServer: a small real HTTP server on loopback that answers every request with one canned
  answer (after an optional delay) and records what it was asked, for what a real Prometheus
  cannot be made to do on demand: check the Authorization header, send warnings, be slow.
"""

import json
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.servers import ServerError, ServerProcess, clean_env, free_port

PROMETHEUS = Path("/usr/bin/prometheus")
SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["{address}"]
"""


class PrometheusServer:
    """A running Prometheus at `url`, already holding a sample of its own `up` series."""

    def __init__(self, work_dir: Path, timeout: float = 60):
        # Another process may take the free port before Prometheus binds it: try a few.
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            config = work_dir / f"prometheus-{attempt}.yml"
            config.write_text(SCRAPE_CONFIG.format(address=f"127.0.0.1:{self.port}"))
            self.process = ServerProcess(
                f"prometheus-{attempt}",
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={work_dir / f'data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                clean_env(),
                work_dir,
            )
            try:
                self.process.wait_for_http(f"{self.url}/-/ready", timeout=timeout)
                break
            except ServerError:
                self.process.stop()
                if "address already in use" not in self.process.log() or attempt == 2:
                    raise
        self._wait_for_first_scrape(timeout)

    def query(self, promql: str) -> dict:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)

    def _wait_for_first_scrape(self, timeout: float) -> None:
        # Ready means the TSDB is open, not that anything is in it: the first scrape lands up to
        # a scrape interval later, and the tests query what it stored.
        deadline = time.monotonic() + timeout
        while not self.query("up")["data"]["result"]:
            if time.monotonic() > deadline:
                self.process.stop()
                raise ServerError(
                    f"prometheus stored no sample of `up` within {timeout:.0f}s:\n"
                    f"{self.process.tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.stop()


@dataclass
class CannedAnswer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Asked:
    path: str
    headers: dict[str, str]


@dataclass
class CannedServer:
    """A loopback HTTP server answering every GET with `answer`; `asked` lists the requests."""

    answer: CannedAnswer
    asked: list[Asked] = field(default_factory=list)

    def __enter__(self) -> "CannedServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.asked.append(Asked(self.path, dict(self.headers.items())))
                time.sleep(server.answer.delay)
                try:
                    self.send_response(server.answer.status)
                    self.send_header("Content-Type", server.answer.content_type)
                    self.send_header("Content-Length", str(len(server.answer.body)))
                    self.end_headers()
                    self.wfile.write(server.answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as the timeout test wants it to

            def log_message(self, format, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
