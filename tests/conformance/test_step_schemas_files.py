"""The file and data steps' config models accept and refuse what Kargo's JSON schemas for them
(../shared/kargo-schemas/steps/<name>-config.json) accept and refuse."""

import pytest

from stages.steps import StepError, get_step

from .step_schemas import model_accepts, needs_schemas, schema_accepts

pytestmark = needs_schemas

OK = True
BAD = False

CASES = {
    "copy": [
        ({"inPath": "a", "outPath": "b"}, OK),
        ({"inPath": "a", "outPath": "b", "ignore": "*.tmp\n!x"}, OK),
        ({"inPath": "a"}, BAD),
        ({"inPath": "", "outPath": "b"}, BAD),
        ({"inPath": "a", "outPath": "b", "ignore": ""}, BAD),
        ({"inPath": "a", "outPath": "b", "extra": 1}, BAD),
        ({"inPath": 1, "outPath": "b"}, BAD),
    ],
    "delete": [
        ({"path": "a"}, OK),
        ({"paths": ["a", "b/**"], "pathsAreGlobs": True, "strict": True}, OK),
        ({}, BAD),
        ({"path": "a", "paths": ["b"]}, BAD),
        ({"paths": []}, BAD),
        ({"paths": [""]}, BAD),
        ({"path": ""}, BAD),
        ({"path": "a", "strict": "true"}, BAD),
        ({"path": "a", "recursive": True}, BAD),
    ],
    "file-write": [
        ({"path": "a", "contents": ""}, OK),
        ({"path": "a", "contents": "x", "permissions": "0644", "overwrite": True}, OK),
        ({"path": "a"}, BAD),
        ({"path": "a", "contents": 1}, BAD),
        ({"path": "a", "contents": "x", "permissions": "644"}, BAD),
        ({"path": "a", "contents": "x", "permissions": "0844"}, BAD),
        ({"path": "a", "contents": "x", "permissions": "00644"}, BAD),
        ({"path": "", "contents": "x"}, BAD),
        ({"path": "a", "contents": "x", "mode": "0644"}, BAD),
    ],
    "tar": [
        ({"inPath": "a", "outPath": "b.tgz", "gzip": True, "ignore": "*.md"}, OK),
        ({"inPath": "a", "outPath": "b.tar", "gzip": False}, OK),
        ({"inPath": "a", "outPath": "b", "gzip": "yes"}, BAD),
        ({"outPath": "b"}, BAD),
        ({"inPath": "a", "outPath": "b", "compress": True}, BAD),
    ],
    "untar": [
        ({"inPath": "a.tar", "outPath": "b"}, OK),
        ({"inPath": "a.tar", "outPath": "b", "stripComponents": 0, "ignore": "x"}, OK),
        ({"inPath": "a.tar", "outPath": "b", "stripComponents": 2}, OK),
        ({"inPath": "a.tar", "outPath": "b", "stripComponents": -1}, BAD),
        ({"inPath": "a.tar", "outPath": "b", "stripComponents": 1.5}, BAD),
        ({"inPath": "a.tar", "outPath": "b", "stripComponents": "1"}, BAD),
        ({"inPath": "a.tar", "outPath": "b", "gzip": True}, BAD),
        ({"inPath": "a.tar"}, BAD),
    ],
    "yaml-merge": [
        ({"inFiles": ["a.yaml"], "outFile": "o.yaml"}, OK),
        ({"inFiles": ["a", ""], "outFile": "o", "ignoreMissingFiles": True}, OK),
        ({"inFiles": [], "outFile": "o"}, BAD),
        ({"inFiles": [1], "outFile": "o"}, BAD),
        ({"inFiles": ["a"], "outFile": ""}, BAD),
        ({"inFiles": ["a"]}, BAD),
        ({"inFiles": ["a"], "outFile": "o", "strategy": "x"}, BAD),
    ],
}

for _parse in ("json-parse", "yaml-parse"):
    CASES[_parse] = [
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a.b"}]}, OK),
        ({"path": "a", "outputs": []}, BAD),
        ({"path": "a"}, BAD),
        ({"path": "", "outputs": [{"name": "x", "fromExpression": "a"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "", "fromExpression": "a"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a", "as": "y"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a"}], "x": 1}, BAD),
    ]

CASES["json-update"] = [
    ({"path": "a", "updates": [{"key": "a.b", "value": 1}]}, OK),
    ({"path": "a", "updates": [{"key": "a", "value": None}]}, OK),
    ({"path": "a", "updates": [{"key": "a", "value": {"x": [1]}}]}, OK),
    ({"path": "a", "updates": [{"key": "a"}]}, BAD),
    ({"path": "a", "updates": [{"key": "", "value": 1}]}, BAD),
    ({"path": "a", "updates": []}, BAD),
    ({"path": "a", "updates": [{"key": "a", "value": 1, "x": 2}]}, BAD),
    ({"updates": [{"key": "a", "value": 1}]}, BAD),
]


def _params():
    for step, cases in CASES.items():
        for n, (config, valid) in enumerate(cases):
            yield pytest.param(step, config, valid, id=f"{step}-{n}")


@pytest.mark.parametrize(("step", "config", "valid"), list(_params()))
def test_model_agrees_with_kargo_schema(step, config, valid):
    assert schema_accepts(step, config) is valid, "the case disagrees with Kargo's schema"
    assert model_accepts(step, config) is valid


def test_unknown_field_is_named():
    with pytest.raises(StepError, match=r"config\.outputs\[0\]\.as: unknown field"):
        get_step("json-parse").validate(
            {"path": "a", "outputs": [{"name": "x", "fromExpression": "a", "as": "y"}]}
        )
