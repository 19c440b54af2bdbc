"""Argo Rollouts analysis, as Kargo's verification uses it: building an AnalysisRun's spec from
templates and args, evaluating a measurement's conditions, and the phase rules for metrics and
runs (argo-rollouts analysis/analysis.go, utils/evaluate, utils/analysis; facts in
shared/reference/analysis-semantics.md). Pure functions over plain dicts in Argo's JSON shape:
the verification app stores them and runs the providers.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kargo.durations import DurationError, parse_duration
from kargo.expressions import Budget, ExpressionError, evaluate
from kargo.regex import RegexError, compile_regex
from kargo.times import parse_rfc3339, rfc3339_nano

SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE = "Successful", "Failed", "Error", "Inconclusive"
RUNNING, PENDING = "Running", "Pending"
COMPLETED = frozenset({SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE})
# analysisStatusOrder: a run's phase is its worst metric's.
ORDER = {SUCCESSFUL: 0, RUNNING: 1, PENDING: 2, INCONCLUSIVE: 3, ERROR: 4, FAILED: 5}
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
ERROR_RETRY = timedelta(seconds=10)  # DefaultErrorRetryInterval
DEFAULT_RETENTION = 10  # DefaultMeasurementHistoryLimit
# A condition is user input evaluated by the server: small budgets.
CONDITION_BUDGET_STEPS = 100_000
CONDITION_BUDGET_SECONDS = 0.5
_ARG_REF = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")


class AnalysisError(ValueError):
    """A template, arg or metric that cannot make a run; the message says which and why."""


# --- building a run --------------------------------------------------------------------------


def merge_templates(templates: list[tuple[str, dict]], stage_args: list[dict]) -> dict:
    """An AnalysisRun spec from (name, spec) of each template (nested `templates` already
    flattened by the caller) and the Stage's args. Template args merge by name (a later value
    wins, a valueless arg does not erase a value); the Stage's args then set values. Duplicate
    metric names are an error, as in Argo."""
    metrics, args, dry_run, retention = [], {}, [], []
    for _, spec in templates:
        metrics += spec.get("metrics") or []
        for arg in spec.get("args") or []:
            known = args.get(arg["name"], {})
            args[arg["name"]] = {**known, **{k: v for k, v in arg.items() if v is not None}}
        dry_run += spec.get("dryRun") or []
        retention += spec.get("measurementRetention") or []
    for arg in stage_args:
        args[arg["name"]] = {"name": arg["name"], "value": arg.get("value", "")}
    seen = set()
    for metric in metrics:
        if metric["name"] in seen:
            raise AnalysisError(f"metrics[{metric['name']}]: duplicate name")
        seen.add(metric["name"])
    spec = {"metrics": metrics, "args": list(args.values())}
    if dry_run:
        spec["dryRun"] = dry_run
    if retention:
        spec["measurementRetention"] = retention
    return spec


def resolve_args(spec: dict) -> dict:
    """The spec with every `{{args.name}}` in its metrics replaced by the arg's value. An arg
    without a value (a required one the Stage did not give), or one taken from a Secret or a
    field, is an error naming it."""
    values = {}
    for arg in spec.get("args") or []:
        if arg.get("valueFrom"):
            source = next(iter(k for k, v in arg["valueFrom"].items() if v), "valueFrom")
            raise AnalysisError(
                f"args.{arg['name']}: valueFrom.{source} is not supported by this server yet "
                "(it needs the credentials store); give the value in the Stage's "
                "verification args"
            )
        if arg.get("value") is None:
            raise AnalysisError(
                f"args.{arg['name']} has no value: the Stage's verification args must give it"
            )
        values[arg["name"]] = str(arg["value"])

    def substitute(value: Any, where: str) -> Any:
        if isinstance(value, str):

            def one(match: re.Match) -> str:
                if match.group(1) not in values:
                    raise AnalysisError(f"{where}: unknown arg {match.group(0)!r}")
                return values[match.group(1)]

            return _ARG_REF.sub(one, value)
        if isinstance(value, dict):
            return {k: substitute(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    return {
        **spec,
        "metrics": [substitute(m, f"metrics[{m['name']}]") for m in spec.get("metrics") or []],
    }


def int_or_string(value: Any, field: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AnalysisError(f"{field}: {value!r} is not an integer") from None


@dataclass(frozen=True)
class Limits:
    """A metric's scheduling and limits, parsed and checked once."""

    interval: timedelta | None
    initial_delay: timedelta
    count: int  # 0: runs until terminated
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    consecutive_success_limit: int


def limits_of(metric: dict) -> Limits:
    """Argo's ValidateMetric, and the effective values its controller uses."""
    name = metric.get("name", "?")
    where = f"metrics[{name}]"

    def duration(field: str) -> timedelta | None:
        text = metric.get(field)
        if not text:
            return None
        try:
            return parse_duration(str(text))
        except DurationError as exc:
            raise AnalysisError(f"{where}.{field}: {exc}") from None

    interval = duration("interval")
    count = int_or_string(metric.get("count"), f"{where}.count", 0)
    failure = int_or_string(metric.get("failureLimit"), f"{where}.failureLimit", 0)
    inconclusive = int_or_string(metric.get("inconclusiveLimit"), f"{where}.inconclusiveLimit", 0)
    errors = int_or_string(
        metric.get("consecutiveErrorLimit"),
        f"{where}.consecutiveErrorLimit",
        DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    )
    successes = int_or_string(
        metric.get("consecutiveSuccessLimit"), f"{where}.consecutiveSuccessLimit", 0
    )
    if count > 1 and interval is None:
        raise AnalysisError(f"{where}: count must be <= 1 when interval is not set")
    if interval is not None and interval <= timedelta(0):
        raise AnalysisError(f"{where}.interval: must be positive")
    if count == 0 and interval is None:
        count = 1
    if failure < -1 or inconclusive < 0 or errors < 0 or successes < 0:
        raise AnalysisError(f"{where}: limits must be >= 0 (failureLimit may be -1)")
    if failure == -1 and successes <= 0:
        raise AnalysisError(
            f"{where}: failureLimit -1 is only valid with consecutiveSuccessLimit > 0"
        )
    if count:
        if failure >= 0 and count < failure + successes:
            raise AnalysisError(f"{where}: count must be >= failureLimit + consecutiveSuccessLimit")
        if count < inconclusive:
            raise AnalysisError(f"{where}: count must be >= inconclusiveLimit")
    if not metric.get("provider"):
        raise AnalysisError(f"{where}: no provider specified")
    return Limits(
        interval=interval,
        initial_delay=duration("initialDelay") or timedelta(0),
        count=count,
        failure_limit=failure,
        inconclusive_limit=inconclusive,
        consecutive_error_limit=errors,
        consecutive_success_limit=successes,
    )


def matches_any(rules: list[dict], name: str, field: str) -> list[dict]:
    """The dryRun / measurementRetention rules whose metricName (a regex, unanchored as Go's
    regexp.MatchString) matches `name`."""
    found = []
    for rule in rules:
        try:
            pattern = compile_regex(rule["metricName"])
        except RegexError as exc:
            raise AnalysisError(f"{field}: invalid metricName regex: {exc}") from None
        if pattern.search(name):
            found.append(rule)
    return found


def validate_run_spec(spec: dict) -> None:
    """Every metric's limits, and retention rules that match some metric (Argo's validation)."""
    for metric in spec.get("metrics") or []:
        limits_of(metric)
    names = [m["name"] for m in spec.get("metrics") or []]
    for rule in spec.get("measurementRetention") or []:
        if not any(matches_any([rule], n, "measurementRetention") for n in names):
            raise AnalysisError(
                f"measurementRetention: metricName {rule['metricName']!r} matches no metric"
            )
    for rule in spec.get("dryRun") or []:
        matches_any([rule], "", "dryRun")


def is_dry_run(spec: dict, name: str) -> bool:
    return bool(matches_any(spec.get("dryRun") or [], name, "dryRun"))


def retention_limit(spec: dict, name: str) -> int:
    rules = matches_any(spec.get("measurementRetention") or [], name, "measurementRetention")
    limit = rules[-1]["limit"] if rules else 0
    return limit if limit and limit > 0 else DEFAULT_RETENTION


# --- one measurement -------------------------------------------------------------------------


def _as_int(value: Any) -> int:
    return int(str(value), 0) if isinstance(value, str) else int(value)


def _as_float(value: Any) -> float:
    return float(value)


def _is_nil(value: Any) -> bool:
    return value is None


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


CONDITION_HELPERS = {
    "asInt": _as_int,
    "asFloat": _as_float,
    "isNaN": lambda v: isinstance(v, float) and math.isnan(v),
    "isInf": lambda v: isinstance(v, float) and math.isinf(v),
    "isNil": _is_nil,
    "default": _default,
}


def _condition(source: str, which: str, value: Any) -> bool:
    try:
        outcome = evaluate(
            source,
            {**CONDITION_HELPERS, "result": value},
            Budget(CONDITION_BUDGET_STEPS, CONDITION_BUDGET_SECONDS),
        )
    except (ExpressionError, ValueError, TypeError, ArithmeticError) as exc:
        raise AnalysisError(f"could not evaluate {which} {source!r}: {exc}") from None
    if not isinstance(outcome, bool):
        kind = "nil" if outcome is None else type(outcome).__name__
        raise AnalysisError(f"could not evaluate {which} {source!r}: expected bool, but got {kind}")
    return outcome


def evaluate_result(metric: dict, value: Any) -> str:
    """EvaluateResult: the measurement's phase from its value and the metric's conditions.
    Raises AnalysisError (the measurement is then Error) when a condition cannot be evaluated."""
    success, failure = metric.get("successCondition"), metric.get("failureCondition")
    if not success and not failure:
        return SUCCESSFUL
    if success and not failure:
        return SUCCESSFUL if _condition(success, "successCondition", value) else FAILED
    if failure and not success:
        return FAILED if _condition(failure, "failureCondition", value) else SUCCESSFUL
    if _condition(failure, "failureCondition", value):
        return FAILED
    return SUCCESSFUL if _condition(success, "successCondition", value) else INCONCLUSIVE


def format_value(value: Any) -> str:
    """A measurement's value as Argo records it: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError):
        return str(value)


# --- a metric's result and phase -------------------------------------------------------------


def new_result(name: str, dry_run: bool) -> dict:
    result = {
        "name": name,
        "phase": PENDING,
        "measurements": [],
        "count": 0,
        "successful": 0,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
        "consecutiveError": 0,
        "consecutiveSuccess": 0,
    }
    if dry_run:
        result["dryRun"] = True
    return result


def record_measurement(result: dict, measurement: dict, keep: int) -> None:
    """Count a finished measurement into its metric's result (counters reflect every
    measurement; only the last `keep` are kept)."""
    phase = measurement["phase"]
    if phase == ERROR:
        result["error"] += 1
        result["consecutiveError"] += 1
    else:
        result["count"] += 1
        result["consecutiveError"] = 0
        key = {SUCCESSFUL: "successful", FAILED: "failed", INCONCLUSIVE: "inconclusive"}[phase]
        result[key] += 1
        result["consecutiveSuccess"] = (
            result["consecutiveSuccess"] + 1 if phase == SUCCESSFUL else 0
        )
    result["measurements"] = (result["measurements"] + [measurement])[-keep:]


def assess_metric(limits: Limits, result: dict, terminating: bool) -> tuple[str, str]:
    """assessMetricStatus: (phase, message) of one metric."""
    if result["phase"] in COMPLETED:
        return result["phase"], result.get("message", "")
    measurements = result["measurements"]
    if not measurements:
        return (SUCCESSFUL, "Metric terminated") if terminating else (PENDING, "")
    if measurements[-1]["phase"] in (RUNNING, PENDING):
        return RUNNING, ""
    phase, message = "", ""
    if limits.failure_limit >= 0 and result["failed"] > limits.failure_limit:
        phase = FAILED
        message = f"failed ({result['failed']}) > failureLimit ({limits.failure_limit})"
    if result["inconclusive"] > limits.inconclusive_limit:
        phase = INCONCLUSIVE
        message = (
            f"inconclusive ({result['inconclusive']}) > inconclusiveLimit "
            f"({limits.inconclusive_limit})"
        )
    if result["consecutiveError"] > limits.consecutive_error_limit:
        phase = ERROR
        message = (
            f"consecutiveErrors ({result['consecutiveError']}) > consecutiveErrorLimit "
            f"({limits.consecutive_error_limit})"
        )
    if phase:
        return phase, message
    successes = limits.consecutive_success_limit
    if successes > 0 and result["consecutiveSuccess"] >= successes:
        return SUCCESSFUL, (
            f"consecutiveSuccess ({result['consecutiveSuccess']}) >= consecutiveSuccessLimit "
            f"({successes})"
        )
    if limits.count and result["count"] >= limits.count:
        if successes > 0:
            if limits.failure_limit >= 0:
                return INCONCLUSIVE, "count reached before consecutiveSuccessLimit"
            return FAILED, "count reached before consecutiveSuccessLimit"
        return SUCCESSFUL, ""
    return (SUCCESSFUL, "Metric terminated") if terminating else (RUNNING, "")


def assess_run(spec: dict, results: dict[str, dict], terminate: bool) -> dict:
    """assessRunStatus: the run's phase, message and summaries from its metrics' results (which
    are updated in place with their phases). A failed non-dry-run metric makes the run
    terminating: metrics still running end as Argo ends them."""
    metrics = spec.get("metrics") or []
    limits = {m["name"]: limits_of(m) for m in metrics}
    dry = {m["name"]: is_dry_run(spec, m["name"]) for m in metrics}
    terminating = terminate
    for m in metrics:
        phase, message = assess_metric(limits[m["name"]], results[m["name"]], False)
        if not dry[m["name"]] and phase in (FAILED, ERROR, INCONCLUSIVE):
            terminating = True
    summary = {"count": 0, "successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
    dry_summary = dict(summary)
    worst, worst_message, running = SUCCESSFUL, "", False
    for m in metrics:
        result = results[m["name"]]
        phase, message = assess_metric(limits[m["name"]], result, terminating)
        result["phase"] = phase
        if message:
            result["message"] = message
        counts = dry_summary if dry[m["name"]] else summary
        counts["count"] += 1
        if phase not in COMPLETED:
            running = True
            continue
        counts[
            {SUCCESSFUL: "successful", FAILED: "failed", INCONCLUSIVE: "inconclusive"}.get(
                phase, "error"
            )
        ] += 1
        if not dry[m["name"]] and ORDER[phase] > ORDER[worst]:
            worst = phase
            worst_message = f'Metric "{m["name"]}" assessed {phase} due to {message}'
    out = {"summary": summary, "dry_summary": dry_summary}
    if running:
        return {**out, "phase": RUNNING, "message": ""}
    if (
        terminate
        and worst == SUCCESSFUL
        and not any(results[m["name"]]["measurements"] for m in metrics)
    ):
        worst_message = "Run Terminated"
    return {**out, "phase": worst, "message": worst_message if worst != SUCCESSFUL else ""}


# --- when to measure next --------------------------------------------------------------------


def next_due(limits: Limits, result: dict, started_at: datetime) -> datetime | None:
    """When the metric's next measurement is due; None when it needs none (completed, or its
    count is reached). After an Error the next try is ERROR_RETRY later, whatever the interval."""
    if result["phase"] in COMPLETED:
        return None
    measurements = result["measurements"]
    if not measurements:
        return started_at + limits.initial_delay
    last = measurements[-1]
    if last["phase"] in (RUNNING, PENDING):
        return None  # in flight: the run's lease decides when it is retaken
    if limits.count and result["count"] >= limits.count:
        return None
    finished = parse_rfc3339(last.get("finishedAt")) or started_at
    if last["phase"] == ERROR:
        return finished + ERROR_RETRY
    if limits.interval is None:
        return finished
    return finished + limits.interval


def stamp(when: datetime) -> str:
    """A measurement's and a run's times, to the microsecond: a 1 s interval is scheduled from
    them, which whole seconds (metav1.Time's usual form) would make up to a second early."""
    return rfc3339_nano(when.astimezone(UTC))


def start_measurement(now: datetime) -> dict:
    return {"phase": RUNNING, "startedAt": stamp(now)}
