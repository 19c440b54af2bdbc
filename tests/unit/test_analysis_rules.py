"""kargo.analysis against Argo Rollouts' own rules (argoproj/argo-rollouts analysis/analysis.go,
utils/evaluate/evaluate.go, utils/analysis/{factory,helpers}.go) and Kargo's AnalysisRun builder
(akuity/kargo pkg/rollouts/analysis_template.go). Pure functions over plain dicts: no database."""

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from kargo.analysis import (
    COMPLETED,
    DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    DEFAULT_RETENTION,
    ERROR,
    ERROR_RETRY,
    FAILED,
    INCONCLUSIVE,
    PENDING,
    RUNNING,
    SUCCESSFUL,
    AnalysisError,
    assess_metric,
    assess_run,
    evaluate_result,
    fill_deferred,
    format_value,
    is_dry_run,
    limits_of,
    merge_templates,
    new_result,
    next_due,
    record_measurement,
    resolve_args,
    retention_limit,
    secret_refs,
    stamp,
    start_measurement,
    validate_run_spec,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
WEB = {"web": {"url": "https://metrics.example.com/health"}}
NO_DATA = "metric result is nil or empty: no data returned from the metric provider"


def metric(name: str = "m", **fields) -> dict:
    return {"name": name, "provider": WEB, **fields}


def measurement(phase: str, at: datetime = T0, message: str = "") -> dict:
    out = {"phase": phase, "startedAt": stamp(at), "finishedAt": stamp(at)}
    if message:
        out["message"] = message
    return out


def result_of(*phases: str, name: str = "m", keep: int = DEFAULT_RETENTION) -> dict:
    """A metric's result after measurements of these phases, one second apart."""
    result = new_result(name, dry_run=False)
    for i, phase in enumerate(phases):
        record_measurement(result, measurement(phase, T0 + timedelta(seconds=i)), keep)
    return result


def evaluation_error(value, **conditions) -> str:
    with pytest.raises(AnalysisError) as error:
        evaluate_result(metric(**conditions), value)
    return str(error.value)


def limits_error(**fields) -> str:
    with pytest.raises(AnalysisError) as error:
        limits_of(metric(**fields))
    return str(error.value)


# --- EvaluateResult: the decision table --------------------------------------------------------


@pytest.mark.parametrize(
    ("success", "failure", "expected"),
    [
        # Neither condition: Successful (TestEvaluateResultNoFailureConditionAndNoSuccessCondition;
        # the docs' "Inconclusive" is contradicted by the code).
        (None, None, SUCCESSFUL),
        ("", "", SUCCESSFUL),
        # Success only: failed = !success.
        ("result == 1", None, SUCCESSFUL),
        ("result == 2", None, FAILED),
        # Failure only: success = !failure.
        (None, "result == 1", FAILED),
        (None, "result == 2", SUCCESSFUL),
        # Both: failure wins, then success, else Inconclusive.
        ("result == 1", "result == 1", FAILED),
        ("result == 2", "result == 1", FAILED),
        ("result == 1", "result == 2", SUCCESSFUL),
        ("result == 2", "result == 2", INCONCLUSIVE),
    ],
)
def test_the_decision_table(success, failure, expected):
    conditions = {}
    if success is not None:
        conditions["successCondition"] = success
    if failure is not None:
        conditions["failureCondition"] = failure
    assert evaluate_result(metric(**conditions), 1) == expected


def test_no_conditions_is_successful_whatever_the_value():
    for value in (None, [], False, 0, "anything", {"ok": False}):
        assert evaluate_result(metric(), value) == SUCCESSFUL


def test_a_success_condition_error_is_an_error_even_when_the_failure_condition_holds():
    # Both conditions are evaluated before the table decides
    # (TestEvaluateResultWithErrorOnSuccessCondition).
    message = evaluation_error(True, successCondition="invalidVariable", failureCondition="true")
    assert message.startswith("could not evaluate successCondition")
    assert "invalidVariable" in message


def test_a_failure_condition_error_is_an_error_even_when_success_holds():
    message = evaluation_error(True, successCondition="true", failureCondition="invalidVar == true")
    assert message.startswith("could not evaluate failureCondition")
    assert "invalidVar == true" in message


def test_with_both_conditions_broken_the_success_condition_is_reported():
    message = evaluation_error(1, successCondition="nope1", failureCondition="nope2")
    assert message.startswith("could not evaluate successCondition")
    assert "nope1" in message


@pytest.mark.parametrize(
    ("condition", "value", "got"),
    [
        ("1", True, "int"),
        ("result", 1.5, "float64"),
        ("result", "yes", "string"),
        ("result", [1], "[]interface {}"),
        ("result", {"a": 1}, "map[string]interface {}"),
        ("result.missing", {"a": 1}, "<nil>"),
    ],
)
def test_a_condition_must_give_a_bool(condition, value, got):
    message = evaluation_error(value, successCondition=condition)
    assert message.startswith("could not evaluate successCondition")
    assert message.endswith(f"expected bool, but got {got}")


@pytest.mark.parametrize("source", ["result ==", "result > > 1", "(result", "'result =="])
def test_a_syntax_error_is_an_analysis_error(source):
    message = evaluation_error(1, successCondition=source)
    assert message.startswith("could not evaluate successCondition")
    assert source in message


def test_a_failure_condition_syntax_error_names_the_failure_condition():
    assert evaluation_error(1, failureCondition="result >").startswith(
        "could not evaluate failureCondition"
    )


def test_an_unknown_name_is_an_error():
    assert "invalidVariable" in evaluation_error(True, successCondition="invalidVariable")


@pytest.mark.parametrize("value", [None, []])
def test_with_no_data_any_failure_is_explained_as_no_data(value):
    # formatEvalError (TestEvaluateResultErrorMessageWithNilResult / WithEmptySlice).
    message = evaluation_error(value, successCondition="result[0] >= 0.95")
    assert message.startswith("could not evaluate successCondition")
    assert message.endswith(NO_DATA)


def test_with_data_the_evaluator_error_is_kept():
    message = evaluation_error([0.5], successCondition="result[3] >= 0.95")
    assert NO_DATA not in message
    assert "index out of range" in message


def test_an_empty_map_is_data():
    assert NO_DATA not in evaluation_error({}, successCondition="result")


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        # The Prometheus idioms from Argo's docs.
        ("len(result) == 0 || result[0] >= 0.95", [], SUCCESSFUL),
        ("len(result) == 0 || result[0] >= 0.95", [0.5], FAILED),
        ("all(result, # < 1000)", [10.0, 999.0], SUCCESSFUL),
        ("all(result, # < 1000)", [10.0, 1000.0], FAILED),
        ("result == 1", 1.0, SUCCESSFUL),  # Go's float64 1 equals int 1
        ("result.status == 200", {"status": 200}, SUCCESSFUL),
        ("result in ['ok', 'fine']", "ok", SUCCESSFUL),
    ],
)
def test_ordinary_conditions(condition, value, expected):
    assert evaluate_result(metric(successCondition=condition), value) == expected


# --- condition helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        # TestEvaluateAsInt / TestEvaluateAsFloat
        ("asInt(result) == 1", "1"),
        ("asInt(result) == 1", 1),
        ("asInt(result) == 1", 1.123),
        ("asInt(result) == -7", "-7"),
        ("asInt(result) == 10", "010"),  # ParseInt(s, 10, 64): base ten, leading zeros fine
        ("asFloat(result) == 1.1", "1.1"),
        ("asFloat(result) >= 1.1", "1.1"),
        ("asFloat(result) == 1.1", 1.1),
        ("asFloat(result) == 1", 1),
        ("asFloat(result) == 1000", "1e3"),
        ("isNaN(result)", math.nan),
        ("!isNaN(result)", 1.0),
        ("isNaN(asFloat('NaN'))", 0),
        ("isInf(result)", math.inf),
        ("isInf(result)", -math.inf),
        ("!isInf(result)", 0.0),
        ("isInf(asFloat('-Inf'))", 0),
        ("isNil(result)", None),
        ("!isNil(result)", 0),
        ("!isNil(result)", []),
        ("default(result, 5) == 5", None),
        ("default(result, 5) == 3", 3),
        ("default(result, 0.5) >= 0.5", None),
    ],
)
def test_condition_helpers(condition, value):
    assert evaluate_result(metric(successCondition=condition), value) == SUCCESSFUL


@pytest.mark.parametrize(
    ("condition", "value", "why"),
    [
        ("asInt(result) == 1", "1.1", 'parsing "1.1"'),  # TestAsInt: panics
        ("asInt(result) == 1", "notint", 'parsing "notint"'),
        ("asInt(result) == 16", "0x10", 'parsing "0x10"'),  # base ten only
        ("asInt(result) == 1", " 1", 'parsing " 1"'),
        ("asInt(result) == 1", True, "asInt() not supported on bool true"),
        ("asFloat(result) == 1.1", "NotANum", 'strconv.ParseFloat: parsing "NotANum"'),
        ("asFloat(result) == 1", "1_000", 'parsing "1_000"'),
        ("asFloat(result) == 1", [1], "asFloat() not supported"),
    ],
)
def test_helpers_refuse_what_go_refuses(condition, value, why):
    message = evaluation_error(value, successCondition=condition)
    assert message.startswith("could not evaluate successCondition")
    assert why in message


def test_is_nil_and_default_look_at_the_result_whatever_their_argument():
    # Argo's isNilFunc / defaultFunc close over the measurement's result and ignore their
    # first argument (utils/evaluate/evaluate.go): isNil(result.x) is isNil(result), and
    # default(result.x, 0) is the whole result when there is one.
    value = {"x": None}
    assert evaluate_result(metric(successCondition="isNil(result.x)"), value) == FAILED
    assert evaluate_result(metric(successCondition="default(result.x, 0) == 0"), value) == FAILED
    assert evaluate_result(metric(successCondition="default(result.x, 0) == result"), value) == (
        SUCCESSFUL
    )
    assert evaluate_result(metric(successCondition="isNil(1)"), None) == SUCCESSFUL


def test_a_condition_over_its_budget_is_an_error_not_a_hang():
    began = time.monotonic()
    message = evaluation_error([1.0], successCondition="len(map(1..1000, map(1..1000, #))) > 0")
    assert time.monotonic() - began < 5
    assert message.startswith("could not evaluate successCondition")
    assert "exceeded its budget" in message


def test_a_condition_that_builds_exponentially_is_refused():
    message = evaluation_error(
        [1.0], failureCondition="len(toJSON(reduce(1..60, [#acc, #acc], 1))) > 0"
    )
    assert message.startswith("could not evaluate failureCondition")
    assert "exceeded its budget" in message


# --- limits_of: ValidateMetric and the effective values -----------------------------------------


def test_without_count_or_interval_a_metric_measures_once():
    limits = limits_of(metric())
    assert (limits.count, limits.interval, limits.initial_delay) == (1, None, timedelta(0))


def test_with_only_an_interval_a_metric_runs_until_terminated():
    limits = limits_of(metric(interval="30s"))
    assert (limits.count, limits.interval) == (0, timedelta(seconds=30))


def test_count_and_interval_are_kept():
    limits = limits_of(metric(interval="5m", count=4, initialDelay="1m30s"))
    assert (limits.count, limits.interval, limits.initial_delay) == (
        4,
        timedelta(minutes=5),
        timedelta(seconds=90),
    )


def test_count_zero_is_like_no_count():
    assert limits_of(metric(count=0)).count == 1
    assert limits_of(metric(count=0, interval="1s")).count == 0


def test_count_one_needs_no_interval():
    assert limits_of(metric(count=1)).count == 1


def test_count_above_one_needs_an_interval():
    assert "interval" in limits_error(count=2)


def test_the_default_limits():
    limits = limits_of(metric())
    assert limits.failure_limit == 0
    assert limits.inconclusive_limit == 0
    assert limits.consecutive_error_limit == DEFAULT_CONSECUTIVE_ERROR_LIMIT == 4
    assert limits.consecutive_success_limit == 0


def test_failure_limit_minus_one_needs_a_consecutive_success_limit():
    assert "consecutiveSuccessLimit" in limits_error(failureLimit=-1)
    assert "consecutiveSuccessLimit" in limits_error(failureLimit=-1, consecutiveSuccessLimit=0)
    limits = limits_of(metric(failureLimit=-1, consecutiveSuccessLimit=2, count=3, interval="1s"))
    assert (limits.failure_limit, limits.consecutive_success_limit) == (-1, 2)


def test_with_failure_limit_disabled_count_must_cover_consecutive_success_limit():
    # factory.go: `count must be >= consecutiveSuccessLimit` when failureLimit < 0.
    message = limits_error(failureLimit=-1, consecutiveSuccessLimit=3, count=2, interval="1s")
    assert "count must be >= consecutiveSuccessLimit" in message
    assert (
        limits_of(metric(failureLimit=-1, consecutiveSuccessLimit=3, count=3, interval="1s")).count
        == 3
    )


@pytest.mark.parametrize(
    ("count", "failure", "successes", "valid"),
    [(3, 1, 2, True), (4, 1, 2, True), (2, 1, 2, False), (2, 3, 0, False), (5, 5, 0, True)],
)
def test_count_must_cover_failure_limit_plus_consecutive_success_limit(
    count, failure, successes, valid
):
    fields = {
        "count": count,
        "interval": "1s",
        "failureLimit": failure,
        "consecutiveSuccessLimit": successes,
    }
    if valid:
        assert limits_of(metric(**fields)).count == count
    else:
        assert "count must be >= failureLimit + consecutiveSuccessLimit" in limits_error(**fields)


def test_count_must_cover_inconclusive_limit():
    assert "inconclusiveLimit" in limits_error(count=2, interval="1s", inconclusiveLimit=3)
    assert limits_of(metric(count=3, interval="1s", inconclusiveLimit=3)).inconclusive_limit == 3


def test_limits_are_checked_against_count_as_written_not_the_effective_one():
    # ValidateMetric skips the count checks when count is not set: one measurement with
    # failureLimit 2 (or inconclusiveLimit 2) is valid, though it can never fail.
    assert limits_of(metric(failureLimit=2)).failure_limit == 2
    assert limits_of(metric(inconclusiveLimit=2)).inconclusive_limit == 2
    assert limits_of(metric(interval="1s", failureLimit=9)).count == 0


@pytest.mark.parametrize(
    "field",
    ["inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit"],
)
def test_negative_limits_are_invalid(field):
    assert ">= 0" in limits_error(**{field: -1})


def test_failure_limit_below_minus_one_is_invalid():
    assert ">= 0" in limits_error(failureLimit=-2, consecutiveSuccessLimit=1, interval="1s")


@pytest.mark.parametrize(
    ("field", "text"),
    [("interval", "abc"), ("interval", "5 minutes"), ("initialDelay", "1x"), ("interval", "10")],
)
def test_durations_must_parse(field, text):
    message = limits_error(**{field: text})
    assert f"metrics[m].{field}" in message


def test_a_zero_interval_is_refused():
    # A deliberate difference: Argo would measure on every reconcile.
    assert "interval" in limits_error(interval="0s")


def test_go_durations_parse():
    assert limits_of(metric(interval="1h2m3.5s")).interval == timedelta(
        hours=1, minutes=2, seconds=3.5
    )
    assert limits_of(metric(interval="250ms")).interval == timedelta(milliseconds=250)


def test_int_or_string_values():
    limits = limits_of(
        metric(
            count="3",
            interval="1s",
            failureLimit="1",
            inconclusiveLimit="2",
            consecutiveErrorLimit="0",
            consecutiveSuccessLimit="2",
        )
    )
    assert (
        limits.count,
        limits.failure_limit,
        limits.inconclusive_limit,
        limits.consecutive_error_limit,
        limits.consecutive_success_limit,
    ) == (3, 1, 2, 0, 2)


def test_an_explicit_zero_consecutive_error_limit_is_kept():
    assert limits_of(metric(consecutiveErrorLimit=0)).consecutive_error_limit == 0


def test_a_non_integer_limit_is_an_error_naming_the_field():
    assert "metrics[m].failureLimit" in limits_error(failureLimit="three")


@pytest.mark.parametrize(
    ("provider", "error"),
    [
        ({}, "no provider specified"),
        (None, "no provider specified"),
        ({"web": None}, "no provider specified"),
        ({"web": {"url": "x"}, "prometheus": {"query": "up"}}, "multiple providers specified"),
        ({"plugin": {"a/b": {}, "c/d": {}}}, "multiple providers specified"),
        ({"job": {"spec": {}}, "plugin": {"a/b": {}}}, "multiple providers specified"),
    ],
)
def test_exactly_one_provider(provider, error):
    with pytest.raises(AnalysisError, match=error):
        limits_of({"name": "m", "provider": provider})


@pytest.mark.parametrize(
    "provider",
    [{"web": {}}, {"prometheus": {"query": "up"}}, {"job": {"spec": {}}}, {"plugin": {"a/b": {}}}],
)
def test_any_one_provider_is_valid(provider):
    assert limits_of({"name": "m", "provider": provider}).count == 1


# --- validate_run_spec, dryRun and measurementRetention ------------------------------------------


def test_a_run_needs_metrics():
    with pytest.raises(AnalysisError, match="no metrics specified"):
        validate_run_spec({"metrics": []})


def test_validation_checks_every_metric():
    with pytest.raises(AnalysisError, match=r"metrics\[b\]"):
        validate_run_spec({"metrics": [metric("a"), metric("b", count=5)]})


def test_a_retention_rule_must_match_some_metric():
    spec = {"metrics": [metric("a")], "measurementRetention": [{"metricName": "b", "limit": 5}]}
    with pytest.raises(AnalysisError, match="measurementRetention.*matches no metric"):
        validate_run_spec(spec)


def test_a_dry_run_rule_must_match_some_metric():
    # GetDryRunMetrics: "dryRun[0]: Rule didn't match any metric name(s)".
    spec = {"metrics": [metric("a")], "dryRun": [{"metricName": "b"}]}
    with pytest.raises(AnalysisError, match="dryRun.*matches no metric"):
        validate_run_spec(spec)


def test_an_invalid_rule_regex_is_an_error():
    spec = {"metrics": [metric("a")], "dryRun": [{"metricName": "("}]}
    with pytest.raises(AnalysisError, match="dryRun"):
        validate_run_spec(spec)


def test_matching_rules_are_valid():
    validate_run_spec(
        {
            "metrics": [metric("error-rate"), metric("latency")],
            "dryRun": [{"metricName": ".*"}],
            "measurementRetention": [{"metricName": "rate", "limit": 20}],
        }
    )


def test_dry_run_names_are_unanchored_regexes():
    spec = {"dryRun": [{"metricName": "rate"}]}
    assert is_dry_run(spec, "error-rate")
    assert is_dry_run(spec, "rate-limit")
    assert not is_dry_run(spec, "latency")
    assert not is_dry_run({"dryRun": [{"metricName": "^rate$"}]}, "error-rate")
    assert is_dry_run({"dryRun": [{"metricName": ".*"}]}, "anything")
    assert not is_dry_run({}, "anything")


def test_retention_defaults_to_ten():
    assert retention_limit({}, "m") == DEFAULT_RETENTION == 10


def test_retention_rules_set_a_metric_limit():
    spec = {"measurementRetention": [{"metricName": "error", "limit": 20}]}
    assert retention_limit(spec, "error-rate") == 20
    assert retention_limit(spec, "latency") == 10


def test_retention_limit_zero_means_the_default():
    assert retention_limit({"measurementRetention": [{"metricName": ".*", "limit": 0}]}, "m") == 10


def test_the_last_matching_retention_rule_wins():
    spec = {
        "measurementRetention": [
            {"metricName": ".*", "limit": 3},
            {"metricName": "rate", "limit": 7},
        ]
    }
    assert retention_limit(spec, "error-rate") == 7
    assert retention_limit(spec, "latency") == 3


# --- record_measurement -----------------------------------------------------------------------


def test_counters_count_each_phase():
    result = result_of(SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR, SUCCESSFUL)
    assert {k: result[k] for k in ("count", "successful", "failed", "inconclusive", "error")} == {
        "count": 4,
        "successful": 2,
        "failed": 1,
        "inconclusive": 1,
        "error": 1,
    }
    assert len(result["measurements"]) == 5


def test_an_error_does_not_count_toward_count():
    result = result_of(ERROR, ERROR)
    assert (result["count"], result["error"], result["consecutiveError"]) == (0, 2, 2)


def test_consecutive_errors_reset_on_any_other_phase():
    for phase in (SUCCESSFUL, FAILED, INCONCLUSIVE):
        assert result_of(ERROR, ERROR, phase)["consecutiveError"] == 0
    assert result_of(ERROR, SUCCESSFUL, ERROR)["consecutiveError"] == 1


@pytest.mark.parametrize("breaker", [FAILED, INCONCLUSIVE, ERROR])
def test_consecutive_successes_reset_on_anything_but_success(breaker):
    # runMeasurements resets ConsecutiveSuccess on Failed, Inconclusive and Error alike.
    assert result_of(SUCCESSFUL, SUCCESSFUL)["consecutiveSuccess"] == 2
    assert result_of(SUCCESSFUL, SUCCESSFUL, breaker)["consecutiveSuccess"] == 0
    assert result_of(SUCCESSFUL, breaker, SUCCESSFUL)["consecutiveSuccess"] == 1


def test_only_the_last_measurements_are_kept_but_counters_reflect_all():
    result = result_of(*[SUCCESSFUL] * 11, FAILED)
    assert len(result["measurements"]) == 10
    assert result["measurements"][0]["startedAt"] == stamp(T0 + timedelta(seconds=2))
    assert result["measurements"][-1]["phase"] == FAILED
    assert (result["count"], result["successful"], result["failed"]) == (12, 11, 1)


def test_a_retention_limit_keeps_that_many():
    result = result_of(*[SUCCESSFUL] * 5, keep=3)
    assert [m["startedAt"] for m in result["measurements"]] == [
        stamp(T0 + timedelta(seconds=s)) for s in (2, 3, 4)
    ]
    assert result["count"] == 5


def test_a_new_result_is_pending_with_zero_counters():
    result = new_result("m", dry_run=False)
    assert result["phase"] == PENDING
    assert result["measurements"] == []
    assert "dryRun" not in result
    assert new_result("m", dry_run=True)["dryRun"] is True


def test_a_started_measurement_is_running():
    assert start_measurement(T0) == {"phase": RUNNING, "startedAt": "2024-05-01T12:00:00Z"}


# --- assess_metric ---------------------------------------------------------------------------


def assessed(fields: dict, result: dict, terminating: bool = False) -> tuple[str, str]:
    return assess_metric(limits_of(metric(**fields)), result, terminating)


def counters(**counts) -> dict:
    """A result whose last measurement finished with `last`, and these counters."""
    result = new_result("m", dry_run=False)
    result["measurements"] = [measurement(counts.pop("last", FAILED))]
    result.update(counts)
    return result


def test_no_measurements_is_pending_or_successful_when_terminating():
    assert assessed({}, new_result("m", False)) == (PENDING, "")
    assert assessed({}, new_result("m", False), terminating=True)[0] == SUCCESSFUL


def test_a_measurement_in_flight_keeps_the_metric_running():
    result = result_of(FAILED)
    result["measurements"].append(start_measurement(T0))
    assert assessed({"interval": "1s"}, result) == (RUNNING, "")


def test_failures_above_failure_limit_fail_the_metric():
    assert assessed({}, result_of(FAILED)) == (FAILED, "failed (1) > failureLimit (0)")
    fields = {"interval": "1s", "failureLimit": 1}
    assert assessed(fields, result_of(FAILED))[0] == RUNNING
    assert assessed(fields, result_of(FAILED, FAILED)) == (
        FAILED,
        "failed (2) > failureLimit (1)",
    )


def test_inconclusives_above_inconclusive_limit_make_it_inconclusive():
    assert assessed({}, result_of(INCONCLUSIVE)) == (
        INCONCLUSIVE,
        "inconclusive (1) > inconclusiveLimit (0)",
    )
    assert assessed({"interval": "1s", "inconclusiveLimit": 1}, result_of(INCONCLUSIVE))[0] == (
        RUNNING
    )


def test_consecutive_errors_above_the_limit_make_it_error():
    assert assessed({}, result_of(*[ERROR] * 4))[0] == RUNNING
    assert assessed({}, result_of(*[ERROR] * 5)) == (
        ERROR,
        "consecutiveErrors (5) > consecutiveErrorLimit (4)",
    )
    assert assessed({"consecutiveErrorLimit": 0}, result_of(ERROR))[0] == ERROR


def test_errors_that_are_not_consecutive_do_not_add_up():
    result = result_of(ERROR, ERROR, ERROR, ERROR, SUCCESSFUL, ERROR, ERROR, ERROR, ERROR)
    assert assessed({"interval": "1s"}, result)[0] == RUNNING


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # A later check overrides an earlier one within one metric.
        ({"failed": 1, "inconclusive": 1, "consecutiveError": 5}, ERROR),
        ({"failed": 1, "consecutiveError": 5}, ERROR),
        ({"inconclusive": 1, "consecutiveError": 5}, ERROR),
        ({"failed": 1, "inconclusive": 1}, INCONCLUSIVE),
        ({"failed": 1}, FAILED),
    ],
)
def test_error_beats_inconclusive_beats_failed_within_a_metric(counts, expected):
    assert assessed({"interval": "1s"}, counters(**counts))[0] == expected


def test_reaching_consecutive_success_limit_succeeds_before_count():
    fields = {"interval": "1s", "count": 10, "consecutiveSuccessLimit": 2}
    assert assessed(fields, result_of(SUCCESSFUL))[0] == RUNNING
    # failureLimit 0 is checked first.
    assert assessed(fields, result_of(FAILED, SUCCESSFUL, SUCCESSFUL))[0] == FAILED
    fields["failureLimit"] = 1
    assert assessed(fields, result_of(FAILED, SUCCESSFUL, SUCCESSFUL))[0] == SUCCESSFUL
    assert assessed(fields, result_of(SUCCESSFUL, SUCCESSFUL))[0] == SUCCESSFUL


@pytest.mark.parametrize(
    ("fields", "phases", "expected"),
    [
        # consecutiveSuccessLimit and failureLimit both active, count reached without the
        # successes: Inconclusive.
        (
            {"failureLimit": 1, "consecutiveSuccessLimit": 2},
            [SUCCESSFUL, FAILED, SUCCESSFUL],
            INCONCLUSIVE,
        ),
        # failureLimit disabled: Failed.
        (
            {"failureLimit": -1, "consecutiveSuccessLimit": 2},
            [SUCCESSFUL, FAILED, SUCCESSFUL],
            FAILED,
        ),
        ({"failureLimit": -1, "consecutiveSuccessLimit": 2}, [FAILED, FAILED, FAILED], FAILED),
        # failureLimit disabled and the successes reached: Successful.
        (
            {"failureLimit": -1, "consecutiveSuccessLimit": 2},
            [FAILED, SUCCESSFUL, SUCCESSFUL],
            SUCCESSFUL,
        ),
        # No consecutiveSuccessLimit: Successful, failures within failureLimit and all.
        ({"failureLimit": 1}, [SUCCESSFUL, FAILED, SUCCESSFUL], SUCCESSFUL),
        ({"failureLimit": 2}, [FAILED, FAILED, SUCCESSFUL], SUCCESSFUL),
        ({}, [SUCCESSFUL, SUCCESSFUL, SUCCESSFUL], SUCCESSFUL),
    ],
)
def test_what_happens_when_count_is_reached(fields, phases, expected):
    assert assessed({"interval": "1s", "count": 3, **fields}, result_of(*phases))[0] == expected


def test_count_not_reached_keeps_running():
    assert assessed({"interval": "1s", "count": 3}, result_of(SUCCESSFUL, SUCCESSFUL))[0] == RUNNING


def test_errors_do_not_reach_count():
    fields = {"interval": "1s", "count": 2}
    assert assessed(fields, result_of(SUCCESSFUL, ERROR))[0] == RUNNING
    assert assessed(fields, result_of(SUCCESSFUL, ERROR, SUCCESSFUL))[0] == SUCCESSFUL


def test_a_metric_without_interval_succeeds_after_one_measurement():
    assert assessed({}, result_of(SUCCESSFUL)) == (SUCCESSFUL, "")


def test_an_error_then_a_success_completes_a_single_measurement_metric():
    assert assessed({}, result_of(ERROR))[0] == RUNNING
    assert assessed({}, result_of(ERROR, SUCCESSFUL))[0] == SUCCESSFUL


def test_a_metric_running_indefinitely_is_successful_when_terminating():
    result = result_of(*[SUCCESSFUL] * 50)
    assert assessed({"interval": "1s"}, result)[0] == RUNNING
    assert assessed({"interval": "1s"}, result, terminating=True)[0] == SUCCESSFUL


def test_a_metric_short_of_its_count_is_successful_when_terminating():
    result = result_of(SUCCESSFUL, FAILED)
    fields = {"interval": "1s", "count": 5, "failureLimit": 1}
    assert assessed(fields, result, terminating=True)[0] == SUCCESSFUL


def test_terminating_does_not_hide_a_violated_failure_limit():
    assert assessed({"interval": "1s"}, result_of(FAILED), terminating=True)[0] == FAILED


def test_consecutive_success_limit_does_not_matter_when_terminating():
    fields = {"interval": "1s", "count": 10, "consecutiveSuccessLimit": 5, "failureLimit": 2}
    assert assessed(fields, result_of(SUCCESSFUL, FAILED), terminating=True)[0] == SUCCESSFUL


def test_a_completed_metric_keeps_its_phase():
    result = result_of(SUCCESSFUL)
    result["phase"] = FAILED
    assert assessed({}, result)[0] == FAILED


# --- assess_run ------------------------------------------------------------------------------

# A metric of each final phase after a single measurement (count 1).
ENDING = {
    SUCCESSFUL: ({}, SUCCESSFUL),
    FAILED: ({}, FAILED),
    INCONCLUSIVE: ({}, INCONCLUSIVE),
    ERROR: ({"consecutiveErrorLimit": 0}, ERROR),
}


def run_of(*metrics: dict, **spec) -> tuple[dict, dict]:
    return {"metrics": list(metrics), **spec}, {
        m["name"]: new_result(m["name"], False) for m in metrics
    }


def ending_in(name: str, phase: str) -> tuple[dict, dict]:
    fields, measured = ENDING[phase]
    return metric(name, **fields), result_of(measured, name=name)


def assess(spec: dict, results: dict, terminate: bool = False) -> dict:
    return assess_run(spec, results, terminate)


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ((FAILED, ERROR), FAILED),
        ((ERROR, FAILED), FAILED),
        ((ERROR, INCONCLUSIVE), ERROR),
        ((INCONCLUSIVE, ERROR), ERROR),
        ((INCONCLUSIVE, SUCCESSFUL), INCONCLUSIVE),
        ((SUCCESSFUL, INCONCLUSIVE), INCONCLUSIVE),
        ((SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE), FAILED),
        ((SUCCESSFUL, SUCCESSFUL), SUCCESSFUL),
    ],
)
def test_the_run_takes_its_worst_metric_phase(phases, expected):
    pairs = [ending_in(f"m{i}", phase) for i, phase in enumerate(phases)]
    spec = {"metrics": [m for m, _ in pairs]}
    results = {m["name"]: r for m, r in pairs}
    out = assess(spec, results)
    assert out["phase"] == expected
    assert [results[f"m{i}"]["phase"] for i in range(len(phases))] == list(phases)


def test_the_message_names_the_worst_metric_and_why():
    a, ra = ending_in("ok", SUCCESSFUL)
    b, rb = ending_in("error-rate", FAILED)
    out = assess({"metrics": [a, b]}, {"ok": ra, "error-rate": rb})
    assert (
        out["message"] == 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )


def test_the_message_adds_the_last_measurement_message():
    # TestAssessRunStatusErrorMessageFromProvider.
    spec, results = run_of(metric("web", consecutiveErrorLimit=0))
    record_measurement(
        results["web"], measurement(ERROR, message="received non 2xx response code: 503"), 10
    )
    out = assess(spec, results)
    assert out["phase"] == ERROR
    assert out["message"] == (
        'Metric "web" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): '
        '"Error Message: received non 2xx response code: 503"'
    )


def test_the_first_of_equally_bad_metrics_gives_the_message():
    # TestAssessRunStatusMultipleFailures.
    a, ra = ending_in("a", FAILED)
    b, rb = ending_in("b", FAILED)
    out = assess({"metrics": [a, b]}, {"a": ra, "b": rb})
    assert out["message"].startswith('Metric "a" assessed Failed')


def test_a_successful_run_has_no_message():
    a, ra = ending_in("a", SUCCESSFUL)
    assert assess({"metrics": [a]}, {"a": ra}) | {"summary": None, "dry_summary": None} == {
        "phase": SUCCESSFUL,
        "message": "",
        "summary": None,
        "dry_summary": None,
    }


def test_any_metric_not_completed_keeps_the_run_running():
    a, ra = ending_in("a", SUCCESSFUL)
    spec = {"metrics": [a, metric("b", interval="1m")]}
    results = {"a": ra, "b": result_of(SUCCESSFUL, name="b")}
    out = assess(spec, results)
    assert (out["phase"], out["message"]) == (RUNNING, "")
    assert results["a"]["phase"] == SUCCESSFUL
    assert results["b"]["phase"] == RUNNING


def test_a_metric_not_yet_measured_keeps_the_run_running():
    a, ra = ending_in("a", SUCCESSFUL)
    spec = {"metrics": [a, metric("later", initialDelay="5m")]}
    out = assess(spec, {"a": ra, "later": new_result("later", False)})
    assert out["phase"] == RUNNING


def test_a_failed_metric_terminates_the_run_and_ends_an_indefinite_sibling_successful():
    # TestReconcileAnalysisRunTerminateSiblingAfterFail: the sibling ends Successful.
    a, ra = ending_in("fails", FAILED)
    spec = {"metrics": [metric("forever", interval="10s"), a]}
    results = {"forever": result_of(*[SUCCESSFUL] * 3, name="forever"), "fails": ra}
    out = assess(spec, results)
    assert out["phase"] == FAILED
    assert results["forever"]["phase"] == SUCCESSFUL
    assert out["message"] == 'Metric "fails" assessed Failed due to failed (1) > failureLimit (0)'


@pytest.mark.parametrize("phase", [ERROR, INCONCLUSIVE])
def test_an_error_or_inconclusive_metric_terminates_the_run_too(phase):
    a, ra = ending_in("bad", phase)
    spec = {"metrics": [metric("forever", interval="10s"), a]}
    results = {"forever": result_of(SUCCESSFUL, name="forever"), "bad": ra}
    assert assess(spec, results)["phase"] == phase
    assert results["forever"]["phase"] == SUCCESSFUL


def test_a_terminating_run_ends_even_with_a_measurement_in_flight():
    a, ra = ending_in("fails", FAILED)
    spec = {"metrics": [metric("slow", interval="10s"), a]}
    slow = result_of(SUCCESSFUL, name="slow")
    slow["measurements"].append(start_measurement(T0))
    out = assess(spec, {"slow": slow, "fails": ra})
    assert out["phase"] == FAILED
    assert slow["phase"] == RUNNING


def test_a_sibling_not_yet_measured_ends_successful_when_the_run_terminates():
    a, ra = ending_in("fails", FAILED)
    spec = {"metrics": [a, metric("later", initialDelay="5m")]}
    results = {"fails": ra, "later": new_result("later", False)}
    out = assess(spec, results)
    assert out["phase"] == FAILED
    assert results["later"]["phase"] == SUCCESSFUL
    # Argo has no result for it yet: counted, but not as successful.
    assert out["summary"] == {
        "count": 2,
        "successful": 0,
        "failed": 1,
        "inconclusive": 0,
        "error": 0,
    }


def test_dry_run_metrics_never_affect_the_phase_and_are_summarised_apart():
    spec = {
        "metrics": [metric("real"), metric("trial")],
        "dryRun": [{"metricName": "trial"}],
    }
    results = {"real": result_of(SUCCESSFUL, name="real"), "trial": result_of(FAILED, name="trial")}
    out = assess(spec, results)
    assert (out["phase"], out["message"]) == (SUCCESSFUL, "")
    assert out["summary"] == {
        "count": 1,
        "successful": 1,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
    }
    assert out["dry_summary"] == {
        "count": 1,
        "successful": 0,
        "failed": 1,
        "inconclusive": 0,
        "error": 0,
    }
    assert results["trial"]["phase"] == FAILED


def test_a_failed_dry_run_metric_does_not_terminate_the_run():
    spec = {
        "metrics": [metric("forever", interval="1m"), metric("trial")],
        "dryRun": [{"metricName": "trial"}],
    }
    results = {
        "forever": result_of(SUCCESSFUL, name="forever"),
        "trial": result_of(FAILED, name="trial"),
    }
    assert assess(spec, results)["phase"] == RUNNING
    assert results["forever"]["phase"] == RUNNING


def test_a_dry_run_metric_still_running_keeps_the_run_running():
    spec = {
        "metrics": [metric("real"), metric("trial", interval="1m")],
        "dryRun": [{"metricName": "trial"}],
    }
    results = {"real": result_of(SUCCESSFUL, name="real"), "trial": result_of(FAILED, name="trial")}
    # The dry-run metric failed (failureLimit 0) and so completed: the run is done.
    assert assess(spec, results)["phase"] == SUCCESSFUL
    results = {
        "real": result_of(SUCCESSFUL, name="real"),
        "trial": result_of(SUCCESSFUL, name="trial"),
    }
    assert assess(spec, results)["phase"] == RUNNING


def test_an_all_dry_run_analysis_is_successful():
    # TestAssessRunStatusMultipleFailuresInDryRunMode / WithOnlyDryRunMetrics.
    spec = {
        "metrics": [metric("a"), metric("b", consecutiveErrorLimit=0)],
        "dryRun": [{"metricName": ".*"}],
    }
    results = {"a": result_of(FAILED, name="a"), "b": result_of(ERROR, name="b")}
    out = assess(spec, results)
    assert (out["phase"], out["message"]) == (SUCCESSFUL, "")
    assert out["summary"]["count"] == 0
    assert out["dry_summary"] == {
        "count": 2,
        "successful": 0,
        "failed": 1,
        "inconclusive": 0,
        "error": 1,
    }


def test_the_run_summary_counts_metrics_by_outcome():
    pairs = [
        ending_in("s1", SUCCESSFUL),
        ending_in("s2", SUCCESSFUL),
        ending_in("f", FAILED),
        ending_in("i", INCONCLUSIVE),
        ending_in("e", ERROR),
    ]
    out = assess({"metrics": [m for m, _ in pairs]}, {m["name"]: r for m, r in pairs})
    assert out["summary"] == {
        "count": 5,
        "successful": 2,
        "failed": 1,
        "inconclusive": 1,
        "error": 1,
    }
    assert out["dry_summary"] == {
        "count": 0,
        "successful": 0,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
    }


def test_the_summary_counts_what_the_limits_say_not_the_count_matrix():
    # Argo counts a metric by assessMetricFailureInconclusiveOrError: one the count matrix
    # made Inconclusive broke no limit, so it counts as successful; the run is Inconclusive
    # with no "due to" message.
    spec, results = run_of(
        metric("m", interval="1s", count=3, failureLimit=1, consecutiveSuccessLimit=2)
    )
    for i, phase in enumerate([SUCCESSFUL, FAILED, SUCCESSFUL]):
        record_measurement(results["m"], measurement(phase, T0 + timedelta(seconds=i)), 10)
    out = assess(spec, results)
    assert (out["phase"], out["message"]) == (INCONCLUSIVE, "")
    assert results["m"]["phase"] == INCONCLUSIVE
    assert out["summary"] == {
        "count": 1,
        "successful": 1,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
    }


def test_terminating_a_run_with_no_measurements_is_successful_run_terminated():
    spec, results = run_of(metric("a", interval="20s", initialDelay="20s"), metric("b"))
    out = assess(spec, results, terminate=True)
    assert (out["phase"], out["message"]) == (SUCCESSFUL, "Run Terminated")
    assert out["summary"]["successful"] == 0
    assert results["a"]["phase"] == results["b"]["phase"] == SUCCESSFUL


def test_terminating_a_run_that_measured_is_successful_run_terminated():
    spec = {"metrics": [metric("forever", interval="1m", failureLimit=1)]}
    results = {"forever": result_of(SUCCESSFUL, FAILED, SUCCESSFUL, name="forever")}
    out = assess(spec, results, terminate=True)
    assert (out["phase"], out["message"]) == (SUCCESSFUL, "Run Terminated")
    assert out["summary"]["successful"] == 1


def test_terminating_keeps_a_failure_and_its_message():
    a, ra = ending_in("a", FAILED)
    out = assess(
        {"metrics": [a, metric("b", interval="1m")]}, {"a": ra, "b": new_result("b", False)}, True
    )
    assert (out["phase"], out["message"]) == (
        FAILED,
        'Metric "a" assessed Failed due to failed (1) > failureLimit (0)',
    )


def test_assess_run_updates_metric_phases_in_place():
    spec, results = run_of(metric("a"))
    record_measurement(results["a"], measurement(SUCCESSFUL), 10)
    assert results["a"]["phase"] == PENDING
    assess(spec, results)
    assert results["a"]["phase"] == SUCCESSFUL
    assert SUCCESSFUL in COMPLETED and RUNNING not in COMPLETED and PENDING not in COMPLETED


# --- next_due --------------------------------------------------------------------------------


def due(fields: dict, result: dict, started: datetime = T0) -> datetime | None:
    return next_due(limits_of(metric(**fields)), result, started)


def test_the_first_measurement_is_due_at_once():
    assert due({}, new_result("m", False)) == T0


def test_the_first_measurement_waits_for_initial_delay():
    assert due({"initialDelay": "30s", "interval": "1m"}, new_result("m", False)) == T0 + timedelta(
        seconds=30
    )


def test_the_next_measurement_is_an_interval_after_the_last_finished():
    result = result_of(SUCCESSFUL, SUCCESSFUL)
    last = T0 + timedelta(seconds=1)
    assert due({"interval": "1m", "count": 5}, result) == last + timedelta(minutes=1)
    assert due({"interval": "1m"}, result) == last + timedelta(minutes=1)


def test_after_an_error_the_retry_is_ten_seconds_whatever_the_interval():
    result = result_of(SUCCESSFUL, ERROR)
    last = T0 + timedelta(seconds=1)
    assert ERROR_RETRY == timedelta(seconds=10)
    assert due({"interval": "5m", "count": 3}, result) == last + timedelta(seconds=10)
    assert due({"interval": "1s"}, result) == last + timedelta(seconds=10)
    assert due({}, result_of(ERROR)) == T0 + timedelta(seconds=10)


def test_microsecond_finish_times_are_kept():
    result = new_result("m", False)
    finished = T0 + timedelta(microseconds=250_000)
    record_measurement(result, measurement(SUCCESSFUL, finished), 10)
    assert due({"interval": "1s"}, result) == finished + timedelta(seconds=1)


def test_nothing_is_due_once_count_is_reached():
    assert due({}, result_of(SUCCESSFUL)) is None
    assert due({"interval": "1s", "count": 2}, result_of(FAILED, SUCCESSFUL)) is None


def test_nothing_is_due_while_a_measurement_is_in_flight():
    result = result_of(SUCCESSFUL)
    result["measurements"].append(start_measurement(T0 + timedelta(seconds=5)))
    assert due({"interval": "1s"}, result) is None


def test_nothing_is_due_for_a_completed_metric():
    result = result_of(SUCCESSFUL)
    result["phase"] = SUCCESSFUL
    assert due({"interval": "1s"}, result) is None


# --- merge_templates and resolve_args ----------------------------------------------------------


def template(*metrics: dict, args=None, **spec) -> tuple[str, dict]:
    return "t", {"metrics": list(metrics), "args": args or [], **spec}


def args_of(spec: dict) -> dict:
    return {a["name"]: a.get("value") for a in spec["args"]}


def test_template_defaults_are_used():
    spec = merge_templates([template(metric(), args=[{"name": "path", "value": "/healthz"}])], [])
    assert args_of(spec) == {"path": "/healthz"}


def test_stage_args_override_template_defaults():
    spec = merge_templates(
        [template(metric(), args=[{"name": "path", "value": "/healthz"}, {"name": "base"}])],
        [{"name": "base", "value": "http://svc"}, {"name": "path", "value": "/ready"}],
    )
    assert args_of(spec) == {"path": "/ready", "base": "http://svc"}


def test_stage_args_no_template_declares_are_dropped():
    # Kargo's mergeArgs only updates args the templates declare.
    spec = merge_templates(
        [template(metric(), args=[{"name": "a", "value": "1"}])], [{"name": "other", "value": "x"}]
    )
    assert args_of(spec) == {"a": "1"}


def test_an_empty_stage_value_keeps_the_template_value():
    # Kargo's buildArgs gives an arg a value only when the Stage's is not empty.
    spec = merge_templates(
        [template(metric(), args=[{"name": "a", "value": "1"}])], [{"name": "a", "value": ""}]
    )
    assert args_of(spec) == {"a": "1"}


def test_template_args_merge_by_name():
    spec = merge_templates(
        [
            template(metric("x"), args=[{"name": "a"}, {"name": "b", "value": "2"}]),
            template(metric("y"), args=[{"name": "a", "value": "1"}, {"name": "b"}]),
            template(metric("z"), args=[{"name": "b", "value": "2"}]),
        ],
        [],
    )
    # A value fills a valueless arg, a valueless arg does not erase a value, and the same
    # value twice is fine.
    assert args_of(spec) == {"a": "1", "b": "2"}
    assert [m["name"] for m in spec["metrics"]] == ["x", "y", "z"]


def test_templates_giving_an_arg_different_values_conflict():
    with pytest.raises(AnalysisError, match="conflicting values for argument 'a'"):
        merge_templates(
            [
                template(metric("x"), args=[{"name": "a", "value": "1"}]),
                template(metric("y"), args=[{"name": "a", "value": "2"}]),
            ],
            [],
        )


def test_duplicate_metric_names_across_templates_are_an_error():
    with pytest.raises(AnalysisError, match="duplicate"):
        merge_templates([template(metric("x")), template(metric("x"))], [])


def test_dry_run_and_retention_rules_are_concatenated_and_must_be_unique():
    spec = merge_templates(
        [
            template(metric("x"), dryRun=[{"metricName": "x"}]),
            template(
                metric("y"),
                dryRun=[{"metricName": "y"}],
                measurementRetention=[{"metricName": "y", "limit": 3}],
            ),
        ],
        [],
    )
    assert spec["dryRun"] == [{"metricName": "x"}, {"metricName": "y"}]
    assert spec["measurementRetention"] == [{"metricName": "y", "limit": 3}]
    with pytest.raises(AnalysisError, match="dryRun: duplicate metricName"):
        merge_templates(
            [
                template(metric("x"), dryRun=[{"metricName": ".*"}]),
                template(metric("y"), dryRun=[{"metricName": ".*"}]),
            ],
            [],
        )
    with pytest.raises(AnalysisError, match="measurementRetention: duplicate metricName"):
        merge_templates(
            [
                template(
                    metric("x"),
                    measurementRetention=[
                        {"metricName": "x", "limit": 1},
                        {"metricName": "x", "limit": 2},
                    ],
                )
            ],
            [],
        )


def test_no_dry_run_or_retention_keys_without_rules():
    spec = merge_templates([template(metric())], [])
    assert "dryRun" not in spec and "measurementRetention" not in spec


def resolved_metric(value: str, **args: str) -> dict:
    spec = {
        "args": [{"name": k, "value": v} for k, v in args.items()],
        "metrics": [metric(successCondition=value)],
    }
    return resolve_args(spec)["metrics"][0]


def test_placeholders_are_replaced():
    assert resolved_metric("result == '{{args.want}}'", want="ok")["successCondition"] == (
        "result == 'ok'"
    )


def test_placeholders_may_have_spaces():
    assert (
        resolved_metric("{{ args.a }}-{{args.b}}-{{  args.a}}", a="1", b="2")["successCondition"]
        == "1-2-1"
    )


def test_values_are_inserted_literally():
    assert resolved_metric("{{args.q}}", q='say "hi"\n\\')["successCondition"] == 'say "hi"\n\\'


def test_placeholders_are_resolved_throughout_the_metric():
    spec = {
        "args": [{"name": "host", "value": "svc"}, {"name": "n", "value": "3"}],
        "metrics": [
            {
                "name": "m",
                "interval": "1s",
                "count": "{{args.n}}",
                "provider": {
                    "web": {
                        "url": "http://{{args.host}}/health",
                        "headers": [{"key": "X-Host", "value": "{{ args.host }}"}],
                        "jsonBody": {"{{args.host}}": ["{{args.n}}", 5, True]},
                        "timeoutSeconds": 5,
                    }
                },
            }
        ],
    }
    original = {**spec}
    metric_out = resolve_args(spec)["metrics"][0]
    web = metric_out["provider"]["web"]
    assert web["url"] == "http://svc/health"
    assert web["headers"] == [{"key": "X-Host", "value": "svc"}]
    assert web["jsonBody"] == {"svc": ["3", 5, True]}
    assert web["timeoutSeconds"] == 5
    assert limits_of(metric_out).count == 3
    assert spec == original
    assert spec["metrics"][0]["provider"]["web"]["url"] == "http://{{args.host}}/health"


def test_an_unknown_arg_is_an_error_naming_it():
    with pytest.raises(AnalysisError, match=r"unknown arg '\{\{args.y\}\}'") as error:
        resolved_metric("{{args.x}} {{args.y}}", x="1")
    assert "metrics[m].successCondition" in str(error.value)


def test_any_other_placeholder_is_an_error_too():
    # fasttemplate resolves every {{ }} tag: "failed to resolve {{ ctx.stage }}".
    with pytest.raises(AnalysisError, match="failed to resolve"):
        resolved_metric("{{ ctx.stage }}", x="1")


def test_an_unclosed_placeholder_is_an_error():
    with pytest.raises(AnalysisError, match="without a closing"):
        resolved_metric("{{args.x}} {{args.x", x="1")


def test_a_required_arg_without_value_is_an_error_naming_it():
    spec = merge_templates([template(metric(), args=[{"name": "base"}])], [])
    with pytest.raises(AnalysisError, match=r"args\.base has no value"):
        resolve_args(spec)


def test_a_required_arg_is_an_error_even_when_unused():
    with pytest.raises(AnalysisError, match=r"args\.unused"):
        resolve_args({"args": [{"name": "unused"}], "metrics": [metric()]})


def test_a_secret_arg_is_a_clear_error():
    spec = {
        "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        "metrics": [metric(successCondition="'{{args.token}}' != ''")],
    }
    with pytest.raises(AnalysisError) as error:
        resolve_args(spec)
    message = str(error.value)
    assert "args.token" in message
    assert "valueFrom.secretKeyRef" in message


def test_non_string_values_become_text():
    assert resolved_metric("result == {{args.n}}", n=3)["successCondition"] == "result == 3"


def test_resolution_keeps_the_rest_of_the_spec():
    spec = {"args": [], "metrics": [metric()], "dryRun": [{"metricName": "m"}]}
    assert resolve_args(spec)["dryRun"] == [{"metricName": "m"}]


# --- format_value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ('{"a": 1}', '{"a": 1}'),  # text stays text
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (3, "3"),
        (0.97, "0.97"),
        (1.0, "1"),  # Go's FormatFloat: no ".0"
        (-0.5, "-0.5"),
        (1e21, "1000000000000000000000"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        ([], "[]"),
        ([0.99, 3.0], "[0.99,3]"),
        ([1.0, math.nan, -math.inf], "[1,NaN,-Inf]"),
        ({"ok": True, "n": [1, 2]}, '{"n":[1,2],"ok":true}'),  # compact, keys sorted
        ({"s": "a<b>&c", "u": "é"}, '{"s":"a\\u003cb\\u003e\\u0026c","u":"é"}'),
        ([{"a": None}], '[{"a":null}]'),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_a_secret_arg_is_deferred_to_the_measurement_and_filled_in_only_there():
    spec = {
        "args": [
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "host", "value": "h.example"},
        ],
        "metrics": [
            metric(
                provider={
                    "web": {
                        "url": "https://{{args.host}}/x",
                        "headers": [{"key": "Authorization", "value": "Bearer {{ args.token }}"}],
                    }
                }
            )
        ],
    }
    assert secret_refs(spec) == {"token": ("s", "k")}
    resolved = resolve_args(spec, deferred={"token"})
    web = resolved["metrics"][0]["provider"]["web"]
    assert web["url"] == "https://h.example/x"
    assert web["headers"][0]["value"] == "Bearer {{ args.token }}"  # stored without the secret
    filled = fill_deferred(resolved["metrics"][0]["provider"], {"token": "t0ps3cret"})
    assert filled["web"]["headers"][0]["value"] == "Bearer t0ps3cret"
    assert filled["web"]["url"] == "https://h.example/x"


def test_a_field_ref_arg_says_why_it_cannot_resolve():
    spec = {
        "args": [{"name": "pod", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "metrics": [metric()],
    }
    with pytest.raises(AnalysisError, match="refers to a Rollout's fields"):
        resolve_args(spec)
