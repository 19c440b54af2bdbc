"""The `prometheus` metric provider against a real Prometheus (Debian's, started per module and
scraping itself), and against small loopback servers for what a real one cannot be made to do:
check credentials, send warnings, fail with a 5xx, be slow.
"""

import json
import math
from base64 import b64encode
from urllib.parse import parse_qs, urlsplit

import pytest

# Imported for its registration under "prometheus"; the tests measure through the registry.
import verification.providers.prometheus  # noqa: F401
from tests.e2e.servers import free_port
from verification.providers import MeasurementError, measure

from .prometheus_servers import PROMETHEUS, CannedAnswer, CannedServer, PrometheusServer

ONE_SAMPLE = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"job": "canned"}, "value": [1700000000.0, "0.99"]}],
        },
    }
).encode()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    if not PROMETHEUS.exists():
        pytest.skip(
            f"{PROMETHEUS} is not installed (Debian package `prometheus`; scripts/test.sh "
            "installs it)"
        )
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    # Every server here is on loopback, which the egress policy refuses by default.
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True


def measure_prometheus(config: dict, timeout: float = 10):
    return measure({"prometheus": config}, timeout)


def test_a_vector_gives_a_list_of_its_sample_values(prometheus):
    measured = measure_prometheus({"address": prometheus.url, "query": 'up{job="prometheus"}'})

    assert measured.value == [1.0]
    assert measured.phase == ""
    assert measured.metadata == {}


def test_a_vector_of_several_series_gives_every_value(prometheus):
    measured = measure_prometheus(
        {
            "address": prometheus.url,
            "query": 'label_replace(vector(2), "side", "left", "", "") '
            'or label_replace(vector(3), "side", "right", "", "")',
        }
    )
    assert sorted(measured.value) == [2.0, 3.0]


def test_a_scalar_gives_a_float(prometheus):
    assert (
        measure_prometheus({"address": prometheus.url, "query": "scalar(vector(0.5))"}).value == 0.5
    )
    assert measure_prometheus({"address": prometheus.url, "query": "vector(1)"}).value == [1.0]


def test_nan_and_infinities_are_floats(prometheus):
    assert math.isnan(measure_prometheus({"address": prometheus.url, "query": "NaN"}).value)
    [infinite] = measure_prometheus({"address": prometheus.url, "query": "vector(1) / 0"}).value
    assert infinite == math.inf
    [negative] = measure_prometheus({"address": prometheus.url, "query": "vector(-1) / 0"}).value
    assert negative == -math.inf


def test_an_empty_vector_gives_an_empty_list(prometheus):
    measured = measure_prometheus({"address": prometheus.url, "query": 'up{job="nope"}'})

    assert measured.value == []


def test_a_range_query_gives_every_value_of_every_series(prometheus):
    measured = measure_prometheus(
        {
            "address": prometheus.url,
            "query": 'up{job="prometheus"}',
            "rangeQuery": {
                "start": 'now() - duration("30s")',
                "end": "now()",
                "step": "1s",
            },
        }
    )

    # One point a second since the first scrape (at most 31), every one of them 1.
    assert 1 <= len(measured.value) <= 31
    assert set(measured.value) == {1.0}


def test_a_range_query_of_two_series_flattens_them_in_order(prometheus):
    measured = measure_prometheus(
        {
            "address": prometheus.url,
            "query": 'label_replace(vector(1), "side", "a", "", "") '
            'or label_replace(vector(2), "side", "b", "", "")',
            "rangeQuery": {"start": 'now() - duration("4s")', "end": "now()", "step": "2s"},
        }
    )

    # Series are sorted by labels: side="a" (three points: -4s, -2s, now) then side="b".
    assert measured.value == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_an_instant_matrix_is_flattened_too(prometheus):
    measured = measure_prometheus({"address": prometheus.url, "query": 'up{job="prometheus"}[1m]'})

    assert measured.value
    assert set(measured.value) == {1.0}


def test_a_promql_syntax_error_is_an_error_naming_it(prometheus):
    with pytest.raises(MeasurementError) as error:
        measure_prometheus({"address": prometheus.url, "query": "sum(up"})

    assert str(error.value).startswith("bad_data: ")
    assert "parse error" in str(error.value)
    assert "unclosed left parenthesis" in str(error.value)


def test_a_string_result_is_an_error(prometheus):
    with pytest.raises(MeasurementError) as error:
        measure_prometheus({"address": prometheus.url, "query": '"abc"'})

    assert "Prometheus metric type not supported" in str(error.value)
    assert "string" in str(error.value)


def test_a_range_query_step_prometheus_refuses_is_its_error(prometheus):
    with pytest.raises(MeasurementError) as error:
        measure_prometheus(
            {
                "address": prometheus.url,
                "query": "up",
                # 11,000 points per series is Prometheus' limit.
                "rangeQuery": {"start": 'now() - duration("24h")', "end": "now()", "step": "1s"},
            }
        )

    assert str(error.value).startswith("bad_data: ")
    assert "11,000 points" in str(error.value)


def test_an_address_with_a_path_prefix_and_query_keeps_both():
    with CannedServer(CannedAnswer(body=ONE_SAMPLE)) as server:
        measured = measure_prometheus(
            {"address": f"{server.url}/prometheus/?tenant=a b", "query": 'rate(x{a="b c"}[5m]) + 1'}
        )

    assert measured.value == [0.99]
    [asked] = server.asked
    path = urlsplit(asked.path)
    assert path.path == "/prometheus/api/v1/query"
    assert parse_qs(path.query) == {"tenant": ["a b"], "query": ['rate(x{a="b c"}[5m]) + 1']}


def test_a_range_query_sends_start_end_and_step_in_seconds():
    with CannedServer(CannedAnswer(body=ONE_SAMPLE)) as server:
        measure_prometheus(
            {
                "address": server.url,
                "query": "up",
                "rangeQuery": {
                    "start": 'date("2024-05-01T10:00:00Z") - duration("5m")',
                    "end": 'date("2024-05-01T10:00:00Z")',
                    "step": "1m30s",
                },
            }
        )

    [asked] = server.asked
    path = urlsplit(asked.path)
    assert path.path == "/api/v1/query_range"
    assert parse_qs(path.query) == {
        "query": ["up"],
        "start": ["1714557300.000"],
        "end": ["1714557600.000"],
        "step": ["90"],
    }


def test_basic_auth_and_headers_are_sent():
    with CannedServer(CannedAnswer(body=ONE_SAMPLE)) as server:
        measured = measure_prometheus(
            {
                "address": server.url,
                "query": "up",
                "headers": [{"key": "X-Scope-OrgID", "value": "team-a"}],
                "authentication": {"basicAuth": {"username": "grafana", "password": "s3cret"}},
            }
        )

    assert measured.value == [0.99]
    [asked] = server.asked
    assert asked.headers["Authorization"] == "Basic " + b64encode(b"grafana:s3cret").decode()
    assert asked.headers["X-Scope-OrgID"] == "team-a"


def test_an_authorization_header_replaces_basic_auth():
    # As in Argo Rollouts, whose header round tripper runs after the basic auth one.
    with CannedServer(CannedAnswer(body=ONE_SAMPLE)) as server:
        measure_prometheus(
            {
                "address": server.url,
                "query": "up",
                "headers": [{"key": "authorization", "value": "Bearer t0ken"}],
                "authentication": {"basicAuth": {"username": "grafana", "password": "s3cret"}},
            }
        )

    [asked] = server.asked
    assert [v for k, v in asked.headers.items() if k.lower() == "authorization"] == ["Bearer t0ken"]


def test_warnings_go_into_the_metadata():
    answer = json.loads(ONE_SAMPLE)
    answer["warnings"] = ["remote read failed", "partial data"]
    with CannedServer(CannedAnswer(body=json.dumps(answer).encode())) as server:
        measured = measure_prometheus({"address": server.url, "query": "up"})

    assert measured.value == [0.99]
    assert measured.metadata == {"warnings": '"remote read failed", "partial data"'}


def test_a_non_2xx_answer_is_an_error_with_its_code_and_body():
    with CannedServer(
        CannedAnswer(status=503, body=b"Service Unavailable\n", content_type="text/plain")
    ) as server:
        with pytest.raises(MeasurementError) as error:
            measure_prometheus({"address": server.url, "query": "up"})

    assert str(error.value) == "received non 2xx response code: 503: Service Unavailable"


def test_a_slow_answer_times_out():
    with CannedServer(CannedAnswer(body=ONE_SAMPLE, delay=3)) as server:
        with pytest.raises(MeasurementError) as error:
            measure_prometheus({"address": server.url, "query": "up", "timeout": 1})

    assert "timed out" in str(error.value)


def test_the_callers_budget_caps_the_metric_timeout():
    with CannedServer(CannedAnswer(body=ONE_SAMPLE, delay=3)) as server:
        with pytest.raises(MeasurementError) as error:
            measure_prometheus({"address": server.url, "query": "up", "timeout": 30}, timeout=0.5)

    assert "timed out" in str(error.value)


def test_an_unreachable_address_is_an_error_without_credentials():
    closed = free_port()

    with pytest.raises(MeasurementError) as error:
        measure_prometheus(
            {
                "address": f"http://grafana:s3cret@127.0.0.1:{closed}",
                "query": "up",
                "headers": [{"key": "X-Token", "value": "t0ken"}],
                "authentication": {"basicAuth": {"username": "grafana", "password": "pa55"}},
            }
        )

    assert f"127.0.0.1:{closed}" in str(error.value)
    assert "failed" in str(error.value)
    for secret in ("s3cret", "t0ken", "pa55"):
        assert secret not in str(error.value)


def test_loopback_is_refused_when_the_egress_policy_does_not_allow_it(prometheus, settings):
    settings.EGRESS_ALLOW_LOCAL = False

    with pytest.raises(MeasurementError) as error:
        measure_prometheus({"address": prometheus.url, "query": "up"})

    assert "not allowed by this server's egress policy" in str(error.value)
