"""A verification survives kill -9 of its worker (scaled mode: PostgreSQL, Redis, a real Celery
worker and beat). The worker is killed while a measurement is in flight (the health endpoint
holds its answer); after a new worker starts, the run continues from the measurements it had
recorded: the lost one is taken again once its lease runs out, none is counted twice, and the
run ends Successful with exactly its count."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.servers import ServerError

from .chaos_servers import ChaosCluster

HEARTBEAT_TIMEOUT = 2.0  # the lease of a measurement in flight: its timeout plus this
MEASUREMENT_TIMEOUT = 3.0
COUNT = 4
DEADLINE = 120.0

SETUP = """
from kargo_ui.manifests import apply_text
from stages.actions import do_promote
from stages.models import Stage
from freight.models import Freight
apply_text('''
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: slow-health, namespace: kargo-demo}
spec:
  metrics:
  - name: health
    interval: 1s
    count: COUNT
    successCondition: result == "ok"
    provider:
      web: {url: "URL", timeoutSeconds: 3}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: qa, namespace: kargo-demo}
spec:
  requestedFreight:
  - origin: {kind: Warehouse, name: guestbook}
    sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
      - uses: compose-output
        config: {done: true}
  verification:
    analysisTemplates:
    - name: slow-health
''', "kill.yaml", "test")
stage = Stage.objects.get(project__name="kargo-demo", name="qa")
print(do_promote(stage, Freight.objects.filter(project=stage.project).first(), "test").name)
"""


class SlowHealth:
    """/healthz answers "ok"; while `hold` is set, an answer waits until it is cleared."""

    def __init__(self):
        self.requests = 0
        self.hold = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def health():
    state = SlowHealth()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state.requests += 1
            if state.hold.is_set():
                state.release.wait(10)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def cluster(tmp_path):
    cluster = ChaosCluster(tmp_path, HEARTBEAT_TIMEOUT, reconcile_interval=0.5)
    try:
        try:
            cluster.start()
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield cluster
    finally:
        cluster.stop()


def run_status(cluster) -> dict | None:
    rows = cluster.sql("select status::text from stages_analysisrun")
    return json.loads(rows[0][0]) if rows else None


def wait_for(what, check, cluster, deadline=DEADLINE):
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} not within {deadline:.0f}s\n{cluster.logs()}", pytrace=False)


def test_a_run_continues_from_its_measurements_after_kill_9_of_its_worker(cluster, health):
    cluster.env.update(
        KARGO_EGRESS_ALLOW_LOCAL="1",
        KARGO_VERIFICATION_MEASUREMENT_TIMEOUT=str(MEASUREMENT_TIMEOUT),
    )
    cluster.start_worker()
    cluster.shell(SETUP.replace("COUNT", str(COUNT)).replace("URL", health.url))

    def measurements():
        status = run_status(cluster)
        return (status or {}).get("metricResults", [{}])[0].get("measurements") or []

    # One measurement recorded, then the next one held in flight: the worker dies holding it.
    wait_for("a first measurement", lambda: len(measurements()) >= 1, cluster)
    health.hold.set()
    wait_for(
        "a measurement in flight",
        lambda: measurements() and measurements()[-1]["phase"] == "Running",
        cluster,
    )
    before = [m for m in measurements() if m["phase"] != "Running"]
    # The mark is written before the request is sent: wait until the request is at the server,
    # so the worker dies holding a request that was really made.
    wait_for("the held request", lambda: health.requests > len(before), cluster)
    cluster.kill_worker()
    health.release.set()
    health.hold.clear()
    cluster.start_worker()

    status = wait_for(
        "the run to end",
        lambda: (s := run_status(cluster)) and s["phase"] != "Running" and s,
        cluster,
    )
    result = status["metricResults"][0]
    assert status["phase"] == "Successful", status
    assert result["count"] == COUNT and result["successful"] == COUNT, result
    kept = result["measurements"]
    assert len(kept) == COUNT
    # What was recorded before the kill is still there, unchanged, first.
    assert kept[: len(before)] == before
    assert all(m["phase"] == "Successful" and m["value"] == "ok" for m in kept)
    # The lost measurement was asked again: one more request than measurements kept.
    assert health.requests == COUNT + 1
    stage = cluster.sql("select status::text from stages_stage where name = 'qa'")[0][0]
    verification = json.loads(stage)["freightHistory"][0]["verificationHistory"][0]
    assert verification["phase"] == "Successful"
