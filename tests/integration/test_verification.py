"""Verification end to end without a browser: a Stage with spec.verification, promoted, runs an
AnalysisRun whose web metric asks a real HTTP server on loopback; the run's phase decides the
Stage's Verified condition and whether the Freight is verified there (and available
downstream). Tasks run inline (task_always_eager), so each measurement is taken when its task
is sent; a metric with an interval is driven by calling the measure task again after it."""

import io
import json
import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from freight.models import Freight
from kargo.freight_ids import freight_id
from kargo.specs import validate_document
from kargo_ui.manifests import apply_text
from projects.actions import do_create_project
from stages.actions import do_abort_verification, do_promote, do_reverify
from stages.models import AnalysisRun, AnalysisTemplate, Promotion, Stage
from stages.queries import availability, stage_phase
from verification import providers, tasks
from verification.actions import do_take_due, lease

pytestmark = pytest.mark.django_db(transaction=True)


class Health:
    """What the fake service under verification answers: a status code and a JSON body."""

    def __init__(self):
        self.status, self.body, self.requests, self.delay = 200, {"ok": True, "rate": 0.99}, [], 0


@pytest.fixture
def service():
    health = Health()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            health.requests.append((self.path, dict(self.headers)))
            time.sleep(health.delay)
            body = json.dumps(health.body).encode()
            self.send_response(health.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except BrokenPipeError:
                pass  # the client gave up (the timeout test)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            health.requests.append((self.path, dict(self.headers), self.rfile.read(length)))
            self.do_GET()
            health.requests.pop()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    health.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield health
    server.shutdown()
    server.server_close()


PIPELINE = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: app, namespace: v}}
spec:
  subscriptions:
  - git: {{repoURL: "https://git.example.com/app.git"}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: health, namespace: v}}
spec:
  args:
  - name: base
  - name: path
    value: /healthz
  metrics:
  - name: ok
    {metric}
    successCondition: {condition}
    provider:
      web:
        url: "{{{{args.base}}}}{{{{args.path}}}}"
        jsonPath: "{{$.ok}}"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: test, namespace: v}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: app}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: compose-output
        config: {{done: true}}
  verification:
    analysisTemplates:
    - name: {template}
    args:
    - name: base
      value: "{base}"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: uat, namespace: v}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: app}}
    sources: {{stages: [test]}}
  promotionTemplate:
    spec:
      steps:
      - uses: compose-output
        config: {{done: true}}
"""


def pipeline(service, *, metric="", condition="result == true", template="health"):
    do_create_project("v", "tester")
    apply_text(
        PIPELINE.format(metric=metric, condition=condition, template=template, base=service.url),
        "test.yaml",
        "tester",
    )
    stage = Stage.objects.get(project__name="v", name="test")
    return stage, make_freight(stage, "a")


def make_freight(stage, digit: str) -> Freight:
    commits = [{"repoURL": "https://git.example.com/app.git", "id": digit * 40}]
    return Freight.objects.create(
        project=stage.project,
        name=freight_id("app", commits, [], []),
        alias=f"freight-{digit}",
        origin_name="app",
        commits=commits,
        discovered_at=timezone.now(),
    )


@pytest.fixture
def local_egress(settings):
    settings.EGRESS_ALLOW_LOCAL = True


def latest(stage) -> dict:
    stage.refresh_from_db()
    return stage.status["freightHistory"][0]["verificationHistory"][0]


def test_a_passing_web_metric_verifies_the_freight(service, local_egress):
    stage, freight = pipeline(service)
    promotion = do_promote(stage, freight, actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    info = latest(stage)
    assert info["phase"] == "Successful", info
    run = AnalysisRun.objects.get(name=info["analysisRun"]["name"])
    assert run.status["phase"] == "Successful"
    result = run.status["metricResults"][0]
    assert result["count"] == 1 and result["successful"] == 1
    assert result["measurements"][0]["value"] == "true"
    assert service.requests[0][0] == "/healthz"  # args: the template default and the Stage's
    assert run.labels["kargo.akuity.io/stage"] == "test"
    assert stage_phase(stage) == "Ready"
    freight.refresh_from_db()
    assert "test" in freight.status["verifiedIn"]
    uat = Stage.objects.get(project=stage.project, name="uat")
    assert availability(uat, freight)[0] is True


def test_a_failing_metric_fails_verification_and_keeps_the_freight_from_downstream(
    service, local_egress
):
    service.body = {"ok": False}
    stage, freight = pipeline(service)
    do_promote(stage, freight, actor="user:tester")
    info = latest(stage)
    assert info["phase"] == "Failed"
    assert 'Metric "ok" assessed Failed due to failed (1) > failureLimit (0)' in info["message"]
    assert stage_phase(stage) == "Failed"
    freight.refresh_from_db()
    assert "test" not in freight.status.get("verifiedIn", {})
    uat = Stage.objects.get(project=stage.project, name="uat")
    assert availability(uat, freight)[0] is False


def test_non_2xx_is_an_error_measurement_counted_to_consecutive_error_limit(service, local_egress):
    service.status = 503
    stage, freight = pipeline(service, metric="consecutiveErrorLimit: 0")
    do_promote(stage, freight, actor="user:tester")
    info = latest(stage)
    assert info["phase"] == "Error"
    run = AnalysisRun.objects.get(name=info["analysisRun"]["name"])
    measurement = run.status["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == "Error"
    assert measurement["message"] == "received non 2xx response code: 503"
    assert "consecutiveErrors (1) > consecutiveErrorLimit (0)" in info["message"]


def test_a_missing_template_ends_the_verification_error_with_its_name(service, local_egress):
    stage, freight = pipeline(service, template="nope")
    do_promote(stage, freight, actor="user:tester")
    info = latest(stage)
    assert info["phase"] == "Error"
    assert info["message"] == "AnalysisTemplate 'nope' not found in project v"
    assert not AnalysisRun.objects.exists()


def test_an_unparsable_condition_is_an_error_measurement(service, local_egress):
    stage, freight = pipeline(service, condition="'result =='", metric="consecutiveErrorLimit: 0")
    do_promote(stage, freight, actor="user:tester")
    info = latest(stage)
    assert info["phase"] == "Error"
    run = AnalysisRun.objects.get(name=info["analysisRun"]["name"])
    message = run.status["metricResults"][0]["measurements"][0]["message"]
    assert message.startswith("could not evaluate successCondition 'result =='")


def test_egress_policy_refuses_loopback_unless_allowed(service):
    stage, freight = pipeline(service, metric="consecutiveErrorLimit: 0")
    do_promote(stage, freight, actor="user:tester")
    run = AnalysisRun.objects.get()
    message = run.status["metricResults"][0]["measurements"][0]["message"]
    assert "not allowed by this server's egress policy" in message
    assert service.requests == []


def test_interval_and_count_take_measurements_until_count_then_succeed(service, local_egress):
    stage, freight = pipeline(service, metric='interval: "100ms"\n    count: 3')
    do_promote(stage, freight, actor="user:tester")
    assert latest(stage)["phase"] == "Running"
    assert stage_phase(stage) == "Verifying"
    run = AnalysisRun.objects.get()
    for _ in range(50):
        if run.status["phase"] != "Running":
            break
        time.sleep(0.12)
        tasks.measure_run(run.id)
        run.refresh_from_db()
    assert run.status["phase"] == "Successful"
    assert run.status["metricResults"][0]["count"] == 3
    assert latest(stage)["phase"] == "Successful"


def test_the_next_promotion_waits_for_verification(service, local_egress):
    stage, freight = pipeline(service, metric='interval: "1h"\n    count: 2')
    do_promote(stage, freight, actor="user:tester")
    second = make_freight(stage, "b")
    waiting = do_promote(stage, second, actor="user:tester")
    waiting.refresh_from_db()
    assert waiting.phase == "Pending"
    do_abort_verification(stage, "user:boss")
    waiting.refresh_from_db()
    assert waiting.phase == "Succeeded"


def test_abort_ends_the_run_failed_with_the_actor_and_reverify_starts_a_new_one(
    service, local_egress
):
    stage, freight = pipeline(service, metric='interval: "1h"\n    count: 2')
    do_promote(stage, freight, actor="user:tester")
    run = AnalysisRun.objects.get()
    assert run.status["phase"] == "Running"
    do_abort_verification(stage, "user:boss")
    info = latest(stage)
    assert (info["phase"], info["message"], info["actor"]) == (
        "Failed",
        "Verification aborted by user",
        "user:boss",
    )
    run.refresh_from_db()
    assert run.spec["terminate"] is True and run.status["phase"] == "Failed"
    assert run.next_measure_at is None
    tasks.measure_run(run.id)  # a late task changes nothing
    run.refresh_from_db()
    assert run.status["metricResults"][0]["count"] == 1
    do_reverify(stage, "user:tester")
    infos = Stage.objects.get(id=stage.id).status["freightHistory"][0]["verificationHistory"]
    assert [i["phase"] for i in infos] == ["Running", "Failed"]
    assert AnalysisRun.objects.count() == 2
    # Reverify while a run is in progress: it stops (Aborted) and a new one starts.
    do_reverify(stage, "user:carol")
    infos = Stage.objects.get(id=stage.id).status["freightHistory"][0]["verificationHistory"]
    assert [i["phase"] for i in infos] == ["Running", "Aborted", "Failed"]
    assert infos[1]["message"] == "Superseded by a reverification requested by user:carol"
    superseded = AnalysisRun.objects.get(name=infos[1]["analysisRun"]["name"])
    assert superseded.status["phase"] == "Failed" and superseded.spec["terminate"] is True


def test_a_lost_measurement_is_taken_again_after_its_lease(service, local_egress, settings):
    settings.VERIFICATION_MEASUREMENT_TIMEOUT = 0.01
    stage, freight = pipeline(service, metric='interval: "1h"\n    count: 2')
    do_promote(stage, freight, actor="user:tester")
    run = AnalysisRun.objects.get()
    # A worker marks the second measurement in flight and dies before recording it.
    run.status["metricResults"][0]["measurements"][-1]["finishedAt"] = "2000-01-01T00:00:00Z"
    run.save(update_fields=["status"])
    assert len(do_take_due(run.id)) == 1
    run.refresh_from_db()
    assert run.status["metricResults"][0]["measurements"][-1]["phase"] == "Running"
    tasks.measure_run(run.id)  # within the lease: not taken twice
    run.refresh_from_db()
    assert run.status["metricResults"][0]["count"] == 1
    marked = run.status["metricResults"][0]["measurements"][-1]
    old = datetime(2000, 1, 1, tzinfo=UTC) - lease()
    marked["startedAt"] = old.strftime("%Y-%m-%dT%H:%M:%SZ")
    run.save(update_fields=["status"])
    tasks.measure_run(run.id)
    run.refresh_from_db()
    assert run.status["phase"] == "Successful"
    assert run.status["metricResults"][0]["count"] == 2


def test_reconcile_starts_a_pending_verification_nobody_started(service, local_egress):
    stage, freight = pipeline(service)
    do_promote(stage, freight, actor="user:tester")
    stage.refresh_from_db()
    history = stage.status["freightHistory"]
    history[0]["verificationHistory"].insert(
        0, {"id": "x", "phase": "Pending", "startTime": "2000-01-01T00:00:00Z"}
    )
    stage.save(update_fields=["status"])
    tasks.reconcile_verifications()
    info = latest(stage)
    assert info["id"] == "x" and info["phase"] == "Successful"
    assert Promotion.objects.count() == 1


@pytest.fixture
def healthz(service, local_egress):
    """The service answering "ok" on every path, as the dashboard's /healthz does."""
    service.body = "ok"
    return service.url


def test_the_demo_verifies_uat_against_the_dashboards_healthz(data_dir, healthz):
    call_command(
        "demo",
        "--no-auto-promotion",
        "--no-registry",
        "--server-url",
        healthz,
        stdout=open(os.devnull, "w"),
    )
    demo = Stage.objects.get(project__name="kargo-demo", name="uat").project
    freight = Freight.objects.filter(project=demo).first()
    for name in ("test", "uat"):
        freight.refresh_from_db()
        promotion = do_promote(Stage.objects.get(project=demo, name=name), freight, "user:t")
        promotion.refresh_from_db()
        assert promotion.phase == "Succeeded", promotion.message
    uat = Stage.objects.get(project=demo, name="uat")
    assert latest(uat)["phase"] == "Running"
    run = AnalysisRun.objects.get(project=demo)
    assert run.spec["args"] == [{"name": "url", "value": f"{healthz}/healthz"}]
    for _ in range(40):  # three measurements, two seconds apart
        if run.status["phase"] != "Running":
            break
        time.sleep(0.25)
        tasks.measure_run(run.id)
        run.refresh_from_db()
    assert run.status["phase"] == "Successful"
    assert [m["value"] for m in run.status["metricResults"][0]["measurements"]] == ["ok"] * 3
    assert latest(uat)["phase"] == "Successful"
    prod = Stage.objects.get(project=demo, name="prod")
    freight.refresh_from_db()
    assert availability(prod, freight) == (True, "verified in uat")


def test_kargo_get_exports_analysisruns_in_argos_shape(service, local_egress):
    stage, freight = pipeline(service)
    do_promote(stage, freight, actor="user:tester")
    name = latest(stage)["analysisRun"]["name"]
    out = io.StringIO()
    call_command("kargo", "get", "analysisruns", "--project", "v", stdout=out)
    assert name in out.getvalue()
    out = io.StringIO()
    call_command("kargo", "get", "analysisrun", name, "--project", "v", "-o", "yaml", stdout=out)
    exported = yaml.safe_load(out.getvalue())
    assert (exported["apiVersion"], exported["kind"]) == ("argoproj.io/v1alpha1", "AnalysisRun")
    assert exported["status"]["phase"] == "Successful"
    measurement = exported["status"]["metricResults"][0]["measurements"][0]
    assert (measurement["phase"], measurement["value"]) == ("Successful", "true")
    assert exported["spec"]["metrics"][0]["provider"]["web"]["url"] == f"{service.url}/healthz"
    assert validate_document(exported) == []


@pytest.mark.parametrize(
    "provider,reason",
    [
        ("job: {spec: {template: {spec: {containers: []}}}}", "needs Kubernetes cluster access"),
        ("datadog: {query: x}", "metric provider 'datadog' is not supported by this server"),
    ],
)
def test_a_provider_that_cannot_run_here_ends_the_verification_error_at_once(
    service, local_egress, provider, reason
):
    stage, freight = pipeline(service)
    template = AnalysisTemplate.objects.get(name="health")
    template.spec["metrics"][0]["provider"] = yaml.safe_load(provider)
    template.save()
    do_promote(stage, freight, actor="user:tester")
    info = latest(stage)
    assert info["phase"] == "Error"
    assert info["message"].startswith("metrics[ok]: ") and reason in info["message"]
    assert service.requests == []


def measure_web(config: dict):
    return providers.measure({"web": config}, 30.0)


def test_web_metric_json_path_headers_post_body_and_timeout(service, local_egress):
    service.body = {"data": {"rate": 0.97, "items": [{"v": 1}, {"v": 2}]}}
    assert measure_web({"url": service.url, "jsonPath": "{$.data.rate}"}).value == 0.97
    assert measure_web({"url": service.url, "jsonPath": "{$.data.items[*].v}"}).value == [1, 2]
    with pytest.raises(providers.MeasurementError, match="could not find JSONPath"):
        measure_web({"url": service.url, "jsonPath": "{$.nope}"})
    measure_web(
        {
            "url": service.url + "/check",
            "method": "POST",
            "headers": [{"key": "X-Team", "value": "blue"}],
            "jsonBody": {"stage": "uat"},
        }
    )
    path, headers, body = service.requests[-1]
    assert (path, headers["X-Team"], json.loads(body)) == ("/check", "blue", {"stage": "uat"})
    assert headers["Content-Type"] == "application/json"
    with pytest.raises(providers.MeasurementError, match="a body is not allowed with method GET"):
        measure_web({"url": service.url, "body": "x"})
    service.delay = 2
    with pytest.raises(providers.MeasurementError, match="timed out"):
        measure_web({"url": service.url, "timeoutSeconds": 1})


SECRET_ARG = """
apiVersion: v1
kind: Secret
metadata:
  name: metrics-token
  namespace: v
  labels: {kargo.akuity.io/cred-type: generic}
stringData: {token: s3cr3t-t0ken-value}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: health, namespace: v}
spec:
  args:
  - name: base
  - name: token
    valueFrom:
      secretKeyRef: {name: metrics-token, key: token}
  metrics:
  - name: ok
    successCondition: result == true
    provider:
      web:
        url: "{{args.base}}/healthz"
        headers:
        - {key: Authorization, value: "Bearer {{args.token}}"}
        jsonPath: "{$.ok}"
"""


def test_a_secret_arg_reaches_the_request_and_nothing_stored_or_shown(
    service, local_egress, client, django_user_model
):
    stage, freight = pipeline(service)
    apply_text(SECRET_ARG, "secret.yaml", "tester")
    do_promote(stage, freight, actor="user:tester")
    assert latest(stage)["phase"] == "Successful", latest(stage)
    assert service.requests[-1][1]["Authorization"] == "Bearer s3cr3t-t0ken-value"
    run = AnalysisRun.objects.get()
    assert "s3cr3t" not in json.dumps(run.spec) + json.dumps(run.status)
    header = run.spec["metrics"][0]["provider"]["web"]["headers"][0]
    assert header["value"] == "Bearer {{args.token}}"
    out = io.StringIO()
    call_command(
        "kargo", "get", "analysisrun", run.name, "--project", "v", "-o", "yaml", stdout=out
    )
    assert "s3cr3t" not in out.getvalue()
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(admin)
    page = client.get(f"/project/v/analysisrun/{run.name}/").content.decode()
    assert "s3cr3t" not in page and "Successful" in page


def test_a_missing_secret_arg_ends_the_verification_error_naming_it(service, local_egress):
    stage, freight = pipeline(service)
    apply_text(SECRET_ARG.split("---", 1)[1], "template.yaml", "tester")
    do_promote(stage, freight, actor="user:tester")
    info = latest(stage)
    assert info["phase"] == "Error"
    assert info["message"] == (
        "args.token: Secret 'metrics-token' not found among the project's generic credentials"
    )
