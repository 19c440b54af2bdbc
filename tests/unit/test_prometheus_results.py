"""How the `prometheus` provider reads Prometheus' answers (as Argo Rollouts does), and the
metric settings it refuses before sending anything."""

import json
import math

import pytest

from verification.providers import MeasurementError
from verification.providers.prometheus import measure, measured_from_answer


def answer(result_type: str, result, **extra) -> bytes:
    return json.dumps(
        {"status": "success", "data": {"resultType": result_type, "result": result}, **extra}
    ).encode()


def sample(value: str, **labels) -> dict:
    return {"metric": labels, "value": [1700000000.123, value]}


def series(*values: str, **labels) -> dict:
    return {"metric": labels, "values": [[1700000000 + i, v] for i, v in enumerate(values)]}


def error_of(status: int, body: bytes) -> str:
    with pytest.raises(MeasurementError) as error:
        measured_from_answer(status, body)
    return str(error.value)


def test_a_vector_gives_its_values_in_order():
    measured = measured_from_answer(200, answer("vector", [sample("0.99", a="1"), sample("3")]))

    assert measured.value == [0.99, 3.0]
    assert measured.metadata == {}


def test_an_empty_vector_gives_an_empty_list():
    assert measured_from_answer(200, answer("vector", [])).value == []


def test_a_matrix_gives_every_series_values_one_series_after_another():
    body = answer("matrix", [series("1", "2", pod="a"), series("3", pod="b"), series(pod="c")])

    assert measured_from_answer(200, body).value == [1.0, 2.0, 3.0]


def test_a_scalar_gives_a_float():
    assert measured_from_answer(200, answer("scalar", [1700000000, "0.5"])).value == 0.5


def test_special_values_are_floats():
    values = measured_from_answer(
        200, answer("vector", [sample(v) for v in ("NaN", "+Inf", "-Inf")])
    )

    assert math.isnan(values.value[0])
    assert values.value[1:] == [math.inf, -math.inf]


def test_a_string_result_is_not_supported():
    assert "Prometheus metric type not supported" in error_of(
        200, answer("string", [1700000000, "abc"])
    )


def test_an_unknown_result_type_is_not_supported():
    assert "Prometheus metric type not supported" in error_of(200, answer("streams", []))


def test_warnings_are_kept_as_argo_rollouts_writes_them():
    measured = measured_from_answer(200, answer("vector", [], warnings=["a", "b c"]))

    assert measured.metadata == {"warnings": '"a", "b c"'}


def test_an_error_answer_gives_its_type_and_message():
    body = json.dumps(
        {"status": "error", "errorType": "bad_data", "error": "1:7: parse error: unclosed"}
    ).encode()

    assert error_of(400, body) == "bad_data: 1:7: parse error: unclosed"
    assert error_of(422, body) == "bad_data: 1:7: parse error: unclosed"


def test_a_non_2xx_answer_gives_its_code_and_the_start_of_its_body():
    message = error_of(502, b"<html>\n  <body>Bad Gateway " + b"x" * 1000 + b"</body></html>")

    assert message.startswith("received non 2xx response code: 502: <html> <body>Bad Gateway x")
    assert message.endswith("...")
    assert len(message) < 300


def test_a_non_2xx_answer_without_body_gives_its_code():
    assert error_of(404, b"") == "received non 2xx response code: 404"


def test_an_answer_that_is_not_the_api_is_an_error():
    assert "not a Prometheus API response" in error_of(200, b"<html>login</html>")
    assert "not a Prometheus API response" in error_of(200, b'{"ok": true}')


@pytest.mark.parametrize(
    "result_type, result",
    [
        ("vector", [{"metric": {}, "value": [1, 2]}]),
        ("vector", [{"metric": {}, "value": [1, "many"]}]),
        ("vector", [{"metric": {}}]),
        ("vector", {"not": "a list"}),
        ("matrix", [{"metric": {}, "values": [[1]]}]),
        ("scalar", None),
        (None, []),
    ],
)
def test_a_malformed_result_is_a_bad_response(result_type, result):
    assert error_of(200, answer(result_type, result)).startswith("bad_response: ")


def test_native_histogram_samples_are_refused_rather_than_read_as_zero():
    histogram = {"count": "3", "sum": "6", "buckets": []}

    vector = answer("vector", [{"metric": {}, "histogram": [1700000000, histogram]}])
    matrix = answer(
        "matrix", [{"metric": {}, "values": [[1, "1"]], "histograms": [[2, histogram]]}]
    )

    assert "native histogram samples are not supported" in error_of(200, vector)
    assert "native histogram samples are not supported" in error_of(200, matrix)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"query": "up"}, "prometheus address is not configured"),
        ({"address": "", "query": "up"}, "prometheus address is not configured"),
        ({"address": "prometheus:9090", "query": "up"}, "is not a URL"),
        ({"address": "http://prometheus:9090"}, "prometheus query is not configured"),
        ({"address": "http://prometheus:9090", "query": " "}, "prometheus query is not configured"),
        ({"address": "http://p", "query": "up", "timeout": -1}, "positive number of seconds"),
        ({"address": "http://p", "query": "up", "timeout": "5"}, "must be a number of seconds"),
        (
            {"address": "http://p", "query": "up", "authentication": {"oauth2": {"tokenUrl": "x"}}},
            "not supported by this server",
        ),
        (
            {"address": "http://p", "query": "up", "authentication": {"sigv4": {"region": "x"}}},
            "not supported by this server",
        ),
        (
            {
                "address": "http://p",
                "query": "up",
                "authentication": {"basicAuth": {"password": "x"}},
            },
            "basic auth: username",
        ),
        (
            {
                "address": "http://p",
                "query": "up",
                "authentication": {"basicAuth": {"username": "x"}},
            },
            "basic auth: password",
        ),
        (
            {"address": "http://p", "query": "up", "headers": [{"key": "A B", "value": "x"}]},
            "invalid header name",
        ),
    ],
)
def test_bad_settings_are_errors_before_any_request(config, message):
    with pytest.raises(MeasurementError) as error:
        measure(config, 10)

    assert message in str(error.value)


@pytest.mark.parametrize(
    "range_query, message",
    [
        ({"end": "now()", "step": "1m"}, "rangeQuery.start is not configured"),
        ({"start": "now()", "step": "1m"}, "rangeQuery.end is not configured"),
        (
            {"start": "now(", "end": "now()", "step": "1m"},
            "failed to parse rangeQuery.start as time",
        ),
        (
            {"start": "now()", "end": "1 + 1", "step": "1m"},
            "failed to parse rangeQuery.end as time",
        ),
        ({"start": "now()", "end": "now()"}, "failed to parse rangeQuery.step as duration"),
        ({"start": "now()", "end": "now()", "step": "1d"}, "failed to parse rangeQuery.step"),
        ({"start": "now()", "end": "now()", "step": "0s"}, "rangeQuery.step must be a positive"),
    ],
)
def test_bad_range_queries_are_errors_before_any_request(range_query, message):
    config = {"address": "http://prometheus:9090", "query": "up", "rangeQuery": range_query}

    with pytest.raises(MeasurementError) as error:
        measure(config, 10)

    assert message in str(error.value)


def test_messages_never_show_credentials():
    secrets = ("s3cret", "hunter2", "hünter2")
    configs = [
        {"address": "user:s3cret@prometheus", "query": "up"},
        {
            "address": "http://p",
            "query": "up",
            "headers": [{"key": "X-Token", "value": "hunter2\r\nX-Evil: 1"}],
        },
        {"address": "http://p", "query": "up", "headers": [{"key": "X-Token", "value": "hünter2"}]},
        {
            "address": "http://p",
            "query": "up",
            "authentication": {"basicAuth": {"password": "s3cret"}},
        },
    ]

    for config in configs:
        with pytest.raises(MeasurementError) as error:
            measure(config, 10)
        assert not any(secret in str(error.value) for secret in secrets), str(error.value)
