"""toml-parse and toml-update config models accept and refuse what Kargo's JSON schemas for
them (../shared/kargo-schemas/steps/toml-*-config.json) accept and refuse."""

import json
from pathlib import Path

import jsonschema
import pytest

from stages.steps import StepError, get_step

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "kargo-schemas" / "steps"

OK = True
BAD = False

CASES = {
    "toml-parse": [
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a.b"}]}, OK),
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a"}] * 2}, OK),
        ({"path": "a", "outputs": []}, BAD),
        ({"path": "a"}, BAD),
        ({"outputs": [{"name": "x", "fromExpression": "a"}]}, BAD),
        ({"path": "", "outputs": [{"name": "x", "fromExpression": "a"}]}, BAD),
        ({"path": 1, "outputs": [{"name": "x", "fromExpression": "a"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "", "fromExpression": "a"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": ""}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a", "as": "y"}]}, BAD),
        ({"path": "a", "outputs": [{"name": "x", "fromExpression": "a"}], "x": 1}, BAD),
        ({"path": "a", "outputs": {"name": "x", "fromExpression": "a"}}, BAD),
    ],
    "toml-update": [
        ({"path": "a", "updates": [{"key": "a.b", "value": 1}]}, OK),
        ({"path": "a", "updates": [{"key": "a", "value": "s"}, {"key": "b", "value": True}]}, OK),
        # The schema leaves the value's type open; the step refuses a non-scalar when it runs.
        ({"path": "a", "updates": [{"key": "a", "value": None}]}, OK),
        ({"path": "a", "updates": [{"key": "a", "value": {"x": [1]}}]}, OK),
        ({"path": "a", "updates": [{"key": "a"}]}, BAD),
        ({"path": "a", "updates": [{"value": 1}]}, BAD),
        ({"path": "a", "updates": [{"key": "", "value": 1}]}, BAD),
        ({"path": "a", "updates": [{"key": 1, "value": 1}]}, BAD),
        ({"path": "a", "updates": []}, BAD),
        ({"path": "a", "updates": [{"key": "a", "value": 1, "x": 2}]}, BAD),
        ({"path": "a", "updates": [{"key": "a", "value": 1}], "create": True}, BAD),
        ({"updates": [{"key": "a", "value": 1}]}, BAD),
        ({"path": "", "updates": [{"key": "a", "value": 1}]}, BAD),
    ],
}


def _params():
    for step, cases in CASES.items():
        for n, (config, valid) in enumerate(cases):
            yield pytest.param(step, config, valid, id=f"{step}-{n}")


@pytest.mark.parametrize(("step", "config", "valid"), list(_params()))
def test_model_agrees_with_kargo_schema(step, config, valid):
    schema = json.loads((SCHEMAS / f"{step}-config.json").read_text())
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(config)
    assert schema_ok is valid, "the case's expectation disagrees with Kargo's schema"
    try:
        get_step(step).validate(config)
        model_ok = True
    except StepError:
        model_ok = False
    assert model_ok is schema_ok


def test_unknown_field_is_named():
    with pytest.raises(StepError, match=r"config\.updates\[0\]\.x: unknown field"):
        get_step("toml-update").validate(
            {"path": "a", "updates": [{"key": "a", "value": 1, "x": 2}]}
        )
