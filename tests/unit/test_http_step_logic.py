"""Pure parts of the http steps: query encoding as Go's url.Values, header names as Go's
http.Header, body parsing by content type, and Kargo's outcome table."""

import pytest

from projects.outbound import Answer
from stages.steps import StepError
from stages.steps._http import NameValue, header_map, with_query
from stages.steps.http_request import HTTPConfig, canonical, judge, parse_body, response_env


def nv(name, value):
    return NameValue(name=name, value=value)


def test_query_params_are_added_and_sorted_like_go():
    assert with_query("https://x/p", None) == "https://x/p"
    assert (
        with_query("https://x/p?z=1&a=2#frag", [nv("m", "a b"), nv("a", "1")])
        == "https://x/p?a=2&a=1&m=a+b&z=1#frag"
    )


def test_headers():
    assert header_map([nv("X-A", "1"), nv("x-a", "2"), nv("B", "3")]) == {"X-A": "1, 2", "B": "3"}
    assert canonical("content-TYPE") == "Content-Type"
    assert canonical("x-request-id") == "X-Request-Id"


@pytest.mark.parametrize(
    "body, content_type, parsed",
    [
        (b"", "application/json", {}),
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "", {"a": 1}),
        (b"[1, 2]", "application/octet-stream", [1, 2]),
        (b"hello", "text/html", {}),
        (b"42", "text/plain", "42"),
        (b"a: [x]", "text/yaml", {"a": ["x"]}),
        (b"a: 1", "APPLICATION/X-YAML", {"a": 1}),
    ],
)
def test_parse_body(body, content_type, parsed):
    assert parse_body(body, content_type) == parsed


def test_invalid_json_declared_as_json_is_an_error():
    with pytest.raises(StepError, match="failed to parse JSON response"):
        parse_body(b"{", "application/json")


def outcome(status, **config):
    answer = Answer(status, {"content-type": "application/json"}, b'{"ok": true}', "https://x")
    result = judge(HTTPConfig(url="https://x", **config), answer, response_env(answer, None))
    return None if result is None else result.status


def test_kargo_outcome_table():
    assert outcome(200) == "Succeeded"
    assert outcome(404) is None  # retried
    assert outcome(404, successExpression="response.status == 404") == "Succeeded"
    assert outcome(200, successExpression="false") is None
    assert outcome(200, failureExpression="false") is None  # success unknown: wait
    assert outcome(500, failureExpression="response.status >= 500") == "Failed"
    assert outcome(200, successExpression="true", failureExpression="true") == "Failed"
    assert outcome(200, successExpression="response.body.ok") == "Succeeded"
