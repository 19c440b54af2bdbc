"""The config models of http, http-download, fail, set-freight-alias and set-metadata accept and
refuse what Kargo's JSON schemas for them (../shared/kargo-schemas/steps/) accept and refuse."""

import json

import pytest

from stages.steps import StepError, get_step

from .step_schemas import model_accepts, needs_schemas, schema_accepts

pytestmark = needs_schemas

H = {"name": "X", "value": "1"}

CASES = {
    "http": [
        {"url": "https://x"},
        {},
        {"url": ""},
        {"url": "https://x", "method": "POST", "body": "{}"},
        {"url": "https://x", "method": "OPTIONS"},
        {"url": "https://x", "method": "get"},
        {"url": "https://x", "headers": [H], "queryParams": [H]},
        {"url": "https://x", "headers": [{"name": "X"}]},
        {"url": "https://x", "headers": [{"name": "", "value": "1"}]},
        {"url": "https://x", "headers": [{"name": "X", "value": ""}]},
        {"url": "https://x", "headers": [{**H, "extra": 1}]},
        {"url": "https://x", "queryParams": [{"name": "q"}]},
        {"url": "https://x", "body": "a", "bodyFromFile": "b"},
        {"url": "https://x", "body": "", "bodyFromFile": "b"},
        {"url": "https://x", "bodyFromFile": ""},
        {"url": "https://x", "body": None},
        {"url": "https://x", "body": ""},
        {"url": "https://x", "insecureSkipTLSVerify": True},
        {"url": "https://x", "insecureSkipTLSVerify": "true"},
        {"url": "https://x", "proxy": "http://proxy:3128"},
        {"url": "https://x", "proxy": "socks5://proxy"},
        {"url": "https://x", "timeout": "30s"},
        {"url": "https://x", "timeout": "1h30m"},
        {"url": "https://x", "timeout": "soon"},
        {"url": "https://x", "timeout": 30},
        {"url": "https://x", "pollInterval": "5m"},
        {"url": "https://x", "pollInterval": "5"},
        {"url": "https://x", "responseContentType": "text/plain"},
        {"url": "https://x", "responseContentType": "text/html"},
        {"url": "https://x", "outputs": [{"name": "a", "fromExpression": "response.status"}]},
        {"url": "https://x", "outputs": [{"name": "a"}]},
        {"url": "https://x", "outputs": [{"name": "", "fromExpression": "x"}]},
        {"url": "https://x", "successExpression": "", "failureExpression": "true"},
        {"url": "https://x", "errorExpression": "response.body.error"},
        {"url": "https://x", "successExpression": True},
        {"url": "https://x", "unknown": 1},
        {"url": "https://x", "method": None},
        {"url": "https://x", "timeout": None},
        {"url": "https://x", "headers": None},
    ],
    "http-download": [
        {"url": "https://x/f", "outPath": "f"},
        {"url": "https://x/f"},
        {"outPath": "f"},
        {"url": "https://x/f", "outPath": ""},
        {"url": "https://x/f", "outPath": "f", "allowOverwrite": True},
        {"url": "https://x/f", "outPath": "f", "allowOverwrite": 1},
        {"url": "https://x/f", "outPath": "f", "headers": [H], "queryParams": [H]},
        {"url": "https://x/f", "outPath": "f", "queryParams": [{"value": "v"}]},
        {"url": "https://x/f", "outPath": "f", "timeout": "10m"},
        {"url": "https://x/f", "outPath": "f", "timeout": "ten"},
        {"url": "https://x/f", "outPath": "f", "insecureSkipTLSVerify": False},
        {"url": "https://x/f", "outPath": "f", "method": "GET"},
        {"url": "https://x/f", "outPath": "f", "allowOverwrite": None},
    ],
    "fail": [
        {},
        {"message": "stop"},
        {"message": ""},
        {"message": 1},
        {"message": None},
        {"reason": "x"},
    ],
    "set-freight-alias": [
        {"name": "abc", "alias": "new"},
        {"name": "abc"},
        {"alias": "new"},
        {"name": "", "alias": "new"},
        {"name": "abc", "alias": ""},
        {"name": "abc", "alias": 1},
        {"name": "abc", "alias": "x", "extra": True},
    ],
    "set-metadata": [
        {"updates": [{"kind": "Stage", "name": "test", "values": {"a": 1}}]},
        {"updates": [{"kind": "Freight", "name": "f", "values": {"a": {"b": [1, None]}}}]},
        {"updates": []},
        {},
        {"updates": [{"kind": "Warehouse", "name": "w", "values": {"a": 1}}]},
        {"updates": [{"kind": "Stage", "name": "", "values": {"a": 1}}]},
        {"updates": [{"kind": "Stage", "name": "test", "values": {}}]},
        {"updates": [{"kind": "Stage", "name": "test", "values": []}]},
        {"updates": [{"kind": "Stage", "name": "test"}]},
        {"updates": [{"kind": "Stage", "name": "test", "values": {"a": 1}, "x": 1}]},
        {"updates": [{"kind": "Stage", "name": "test", "values": {"a": 1}}], "x": 1},
    ],
}


@pytest.mark.parametrize(
    "uses, config",
    [(uses, config) for uses, configs in CASES.items() for config in configs],
    ids=lambda value: value if isinstance(value, str) else json.dumps(value)[:60],
)
def test_model_agrees_with_kargo_schema(uses, config):
    assert model_accepts(uses, config) == schema_accepts(uses, config)


def test_every_case_list_has_both_outcomes():
    for uses, configs in CASES.items():
        outcomes = {schema_accepts(uses, c) for c in configs}
        assert outcomes == {True, False}, uses


def test_unknown_fields_are_named_with_their_path():
    with pytest.raises(StepError, match=r"config\.updates\[0\]\.x: unknown field"):
        get_step("set-metadata").validate(
            {"updates": [{"kind": "Stage", "name": "t", "values": {"a": 1}, "x": 1}]}
        )
    with pytest.raises(StepError, match=r"config\.headers\[0\]\.extra: unknown field"):
        get_step("http").validate({"url": "https://x", "headers": [{**H, "extra": 1}]})
