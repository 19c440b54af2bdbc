"""toml-parse and toml-update config models accept and refuse what Kargo's JSON schemas for
them (../shared/kargo-schemas/steps/toml-*-config.json) accept and refuse."""

import pytest

from stages.steps import StepError, get_step

from .step_schemas import model_accepts, needs_schemas, schema_accepts

pytestmark = needs_schemas

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
    assert schema_accepts(step, config) is valid, "the case disagrees with Kargo's schema"
    assert model_accepts(step, config) is valid


def test_unknown_field_is_named():
    with pytest.raises(StepError, match=r"config\.updates\[0\]\.x: unknown field"):
        get_step("toml-update").validate(
            {"path": "a", "updates": [{"key": "a", "value": 1, "x": 2}]}
        )
