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
from decimal import Decimal
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
# A fasttemplate tag: from `{{` to the first `}}` after it.
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class AnalysisError(ValueError):
    """A template, arg or metric that cannot make a run; the message says which and why."""


# --- building a run --------------------------------------------------------------------------


def merge_templates(templates: list[tuple[str, dict]], stage_args: list[dict]) -> dict:
    """An AnalysisRun spec from (name, spec) of each template (nested `templates` already
    flattened by the caller) and the Stage's args, as Kargo's AnalysisRunBuilder makes it
    (pkg/rollouts/analysis_template.go: flattenTemplates, mergeArgs). Template args merge by
    name: a valueless arg does not erase a value, and two different values are an error. The
    Stage's args then set the values of args the templates declare. Duplicate metric names, and
    duplicate dryRun / measurementRetention rules, are errors."""
    metrics, args, dry_run, retention = [], {}, [], []
    for _, spec in templates:
        metrics += spec.get("metrics") or []
        for arg in spec.get("args") or []:
            known = args.get(arg["name"])
            if known is None:
                args[arg["name"]] = dict(arg)
                continue
            # validateAndUpdateArg: conflicting values are refused, not overridden; only a
            # missing value is filled in.
            if known.get("value") is not None and arg.get("value") is not None:
                if str(known["value"]) != str(arg["value"]):
                    raise AnalysisError(
                        f"conflicting values for argument {arg['name']!r}: "
                        f"{known['value']!r} and {arg['value']!r}"
                    )
            elif arg.get("value") is not None:
                known["value"] = arg["value"]
        dry_run += spec.get("dryRun") or []
        retention += spec.get("measurementRetention") or []
    for arg in stage_args:
        # mergeArgs only updates args a template declares (others are dropped), and buildArgs
        # gives a value only for a non-empty one: an empty Stage value keeps the template's.
        if arg["name"] in args and arg.get("value") not in (None, ""):
            args[arg["name"]] = {**args[arg["name"]], "value": arg["value"]}
    seen = set()
    for metric in metrics:
        if metric["name"] in seen:
            raise AnalysisError(f"metrics[{metric['name']}]: duplicate name")
        seen.add(metric["name"])
    # validateUniqueDryRunMetrics / validateUniqueMeasurementRetentionMetrics.
    for field, rules in (("dryRun", dry_run), ("measurementRetention", retention)):
        names = [rule.get("metricName") for rule in rules]
        for name in names:
            if names.count(name) > 1:
                raise AnalysisError(f"{field}: duplicate metricName {name!r}")
    spec = {"metrics": metrics, "args": list(args.values())}
    if dry_run:
        spec["dryRun"] = dry_run
    if retention:
        spec["measurementRetention"] = retention
    return spec


def secret_refs(spec: dict) -> dict[str, tuple[str, str]]:
    """The args taken from a Secret: {arg name: (Secret name, key)}."""
    out = {}
    for arg in spec.get("args") or []:
        ref = (arg.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            out[arg["name"]] = (ref.get("name") or "", ref.get("key") or "")
    return out


def resolve_args(spec: dict, deferred: frozenset[str] | set[str] = frozenset()) -> dict:
    """The spec with every `{{args.name}}` in its metrics replaced by the arg's value. Args in
    `deferred` (taken from a Secret) keep their placeholder: they are filled in only for the
    measurement (fill_deferred), so a secret is never stored in the run. An arg without a value
    (a required one the Stage did not give), or one taken from a field, is an error naming it."""
    values = {}
    for arg in spec.get("args") or []:
        if arg["name"] in deferred:
            continue
        if arg.get("valueFrom"):
            source = next(iter(k for k, v in arg["valueFrom"].items() if v), "valueFrom")
            why = (
                ": it refers to a Rollout's fields, which a Stage's verification does not have"
                if source == "fieldRef"
                else ""
            )
            raise AnalysisError(f"args.{arg['name']}: valueFrom.{source} cannot be resolved{why}")
        if arg.get("value") is None:
            raise AnalysisError(
                f"args.{arg['name']} has no value: the Stage's verification args must give it"
            )
        values[arg["name"]] = str(arg["value"])

    def substitute(value: Any, where: str) -> Any:
        if isinstance(value, str):
            # Argo resolves the metric as a fasttemplate over {{ and }}: every tag, whatever
            # it holds, must be a known `args.<name>` once trimmed, and a `{{` that is never
            # closed is an error too (utils/template/template.go: resolve, NewTemplate).
            def one(match: re.Match) -> str:
                tag = match.group(1).strip()
                if tag.startswith("args.") and tag[5:] in values:
                    return values[tag[5:]]
                if tag.startswith("args.") and tag[5:] in deferred:
                    return match.group(0)
                if tag.startswith("args."):
                    raise AnalysisError(f"{where}: unknown arg {match.group(0)!r}")
                raise AnalysisError(
                    f"{where}: failed to resolve {match.group(0)!r}: only {{{{args.<name>}}}} "
                    "placeholders can be used"
                )

            resolved = _TAG.sub(one, value)
            if "{{" in _TAG.sub("", value):
                raise AnalysisError(f"{where}: '{{{{' without a closing '}}}}' in {value!r}")
            return resolved
        if isinstance(value, dict):
            return {
                substitute(k, f"{where}.{k}"): substitute(v, f"{where}.{k}")
                for k, v in value.items()
            }
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
    # Argo accepts any interval that parses; a server polling in a tight loop does not.
    if interval is not None and interval <= timedelta(0):
        raise AnalysisError(f"{where}.interval: must be positive")
    if failure < -1 or inconclusive < 0 or errors < 0 or successes < 0:
        raise AnalysisError(f"{where}: limits must be >= 0 (failureLimit may be -1)")
    if failure == -1 and successes <= 0:
        raise AnalysisError(
            f"{where}: failureLimit -1 is only valid with consecutiveSuccessLimit > 0"
        )
    # ValidateMetric checks the count as written, before EffectiveCount makes a missing one 1
    # (utils/analysis/factory.go): one measurement with failureLimit 2 is valid.
    if count:
        if failure >= 0 and count < failure + successes:
            raise AnalysisError(f"{where}: count must be >= failureLimit + consecutiveSuccessLimit")
        if failure < 0 and count < successes:
            raise AnalysisError(f"{where}: count must be >= consecutiveSuccessLimit")
        if count < inconclusive:
            raise AnalysisError(f"{where}: count must be >= inconclusiveLimit")
    if count == 0 and interval is None:
        count = 1
    providers = _provider_count(metric.get("provider") or {})
    if providers == 0:
        raise AnalysisError(f"{where}: no provider specified")
    if providers > 1:
        raise AnalysisError(f"{where}: multiple providers specified")
    return Limits(
        interval=interval,
        initial_delay=duration("initialDelay") or timedelta(0),
        count=count,
        failure_limit=failure,
        inconclusive_limit=inconclusive,
        consecutive_error_limit=errors,
        consecutive_success_limit=successes,
    )


# MetricProvider's fields (pkg/apis/rollouts/v1alpha1/analysis_types.go); `plugin` is a map
# whose every entry is a provider.
PROVIDERS = (
    "prometheus",
    "kayenta",
    "web",
    "datadog",
    "wavefront",
    "newRelic",
    "job",
    "cloudWatch",
    "graphite",
    "influxdb",
    "skywalking",
)


def _provider_count(provider: dict) -> int:
    count = sum(1 for name in PROVIDERS if provider.get(name) is not None)
    return count + len(provider.get("plugin") or {})


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
    """Every metric's limits, and dryRun and retention rules that each match some metric
    (Argo's ValidateMetrics, GetDryRunMetrics, GetMeasurementRetentionMetrics)."""
    if not spec.get("metrics"):
        raise AnalysisError("no metrics specified")
    for metric in spec["metrics"]:
        limits_of(metric)
    names = [m["name"] for m in spec["metrics"]]
    for field in ("measurementRetention", "dryRun"):
        for rule in spec.get(field) or []:
            if not any(matches_any([rule], n, field) for n in names):
                raise AnalysisError(f"{field}: metricName {rule['metricName']!r} matches no metric")


def is_dry_run(spec: dict, name: str) -> bool:
    return bool(matches_any(spec.get("dryRun") or [], name, "dryRun"))


def retention_limit(spec: dict, name: str) -> int:
    rules = matches_any(spec.get("measurementRetention") or [], name, "measurementRetention")
    limit = rules[-1]["limit"] if rules else 0
    return limit if limit and limit > 0 else DEFAULT_RETENTION


# --- one measurement -------------------------------------------------------------------------


# asInt / asFloat take Go's numbers, or a string in strconv.ParseInt(s, 10, 64) /
# strconv.ParseFloat syntax; anything else (a bool, a list, "0x10", " 1") panics in Argo, which
# makes the measurement Error (utils/evaluate/evaluate.go).
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = range(-(2**63), 2**63)


def _as_int(value: Any) -> int:
    if isinstance(value, str):
        if not _GO_INT.fullmatch(value) or int(value) not in _INT64:
            raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"asInt() not supported on {_go_type(value)} {format_value(value)}")
    return int(value)


def _as_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            if value != value.strip() or "_" in value:
                raise ValueError
            return float(value)
        except ValueError:
            raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"asFloat() not supported on {_go_type(value)} {format_value(value)}")
    return float(value)


CONDITION_HELPERS = {
    "asInt": _as_int,
    "asFloat": _as_float,
    "isNaN": lambda v: isinstance(v, float) and math.isnan(v),
    "isInf": lambda v: isinstance(v, float) and math.isinf(v),
}


def _go_type(value: Any) -> str:
    """Go's %T of a value as expr-lang holds it, for "expected bool, but got …"."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def _condition(source: str, which: str, value: Any) -> bool:
    env = {
        **CONDITION_HELPERS,
        "result": value,
        # Argo's isNil and default ignore their first argument and look at the measurement's
        # result itself (isNilFunc, defaultFunc in utils/evaluate/evaluate.go): `isNil(x)` is
        # `isNil(result)` and `default(x, d)` is `result`, or d when the result is nil.
        "isNil": lambda _: value is None,
        "default": lambda _, fallback: fallback if value is None else value,
    }
    try:
        outcome = evaluate(source, env, Budget(CONDITION_BUDGET_STEPS, CONDITION_BUDGET_SECONDS))
        if not isinstance(outcome, bool):
            raise ValueError(f"expected bool, but got {_go_type(outcome)}")
    except (ExpressionError, ValueError, TypeError, ArithmeticError) as exc:
        detail = str(exc)
        # formatEvalError: with no data, any failure is explained as the missing data.
        if value is None or (isinstance(value, (list, tuple)) and not value):
            detail = "metric result is nil or empty: no data returned from the metric provider"
        raise AnalysisError(f"could not evaluate {which} {source!r}: {detail}") from None
    return outcome


def evaluate_result(metric: dict, value: Any) -> str:
    """EvaluateResult: the measurement's phase from its value and the metric's conditions.
    Raises AnalysisError (the measurement is then Error) when a condition cannot be evaluated."""
    success, failure = metric.get("successCondition"), metric.get("failureCondition")
    # Both conditions are evaluated, successCondition first, before either decides: an error
    # in one makes the measurement Error even when the other alone would have decided it.
    succeeded = _condition(success, "successCondition", value) if success else False
    failed = _condition(failure, "failureCondition", value) if failure else False
    if not success and not failure:
        return SUCCESSFUL
    if success and not failure:
        failed = not succeeded
    elif failure and not success:
        succeeded = not failed
    if failed:
        return FAILED
    return SUCCESSFUL if succeeded else INCONCLUSIVE


def _go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64), as Prometheus' SampleValue.String() writes values
    (and Go's json.Marshal does for 1e-6 <= |v| < 1e21): 1.0 is "1", 1e21 has no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(value)).normalize(), "f")


def _go_json(value: Any) -> str:
    """Go's json.Marshal of a decoded value: compact, map keys sorted, <>& escaped, UTF-8 kept
    (floats as _go_float, so a Prometheus vector reads "[1,0.5,+Inf]" as Argo writes it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escaped in _GO_HTML_ESCAPES.items():
            text = text.replace(char, escaped)
        return text
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_go_json(k)}:{_go_json(v)}" for k, v in items) + "}"
    return _go_json(str(value))


_GO_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def format_value(value: Any) -> str:
    """A measurement's value as Argo records it: text as is, anything else as Go writes it."""
    if isinstance(value, str):
        return value
    if value is not None and not isinstance(value, (bool, int, float, list, tuple, dict)):
        return str(value)
    return _go_json(value)


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
        # An error breaks a run of successes too (runMeasurements, analysis/analysis.go).
        result["consecutiveSuccess"] = 0
    else:
        result["count"] += 1
        result["consecutiveError"] = 0
        key = {SUCCESSFUL: "successful", FAILED: "failed", INCONCLUSIVE: "inconclusive"}[phase]
        result[key] += 1
        result["consecutiveSuccess"] = (
            result["consecutiveSuccess"] + 1 if phase == SUCCESSFUL else 0
        )
    result["measurements"] = (result["measurements"] + [measurement])[-keep:]


def limit_breach(limits: Limits, result: dict) -> tuple[str, str]:
    """assessMetricFailureInconclusiveOrError: ("", "") or the phase and message of a limit the
    counters exceed. A later check overrides an earlier one: Error beats Inconclusive, which
    beats Failed."""
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
    return phase, message


def assess_metric(limits: Limits, result: dict, terminating: bool) -> tuple[str, str]:
    """assessMetricStatus: (phase, message) of one metric."""
    if result["phase"] in COMPLETED:
        return result["phase"], result.get("message", "")
    measurements = result["measurements"]
    if not measurements:
        return (SUCCESSFUL, "Metric terminated") if terminating else (PENDING, "")
    if measurements[-1]["phase"] in (RUNNING, PENDING):
        return RUNNING, ""
    phase, message = limit_breach(limits, result)
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


_SUMMARY_KEY = {FAILED: "failed", INCONCLUSIVE: "inconclusive", ERROR: "error"}


def assess_run(spec: dict, results: dict[str, dict], terminate: bool) -> dict:
    """assessRunStatus: the run's phase, message and summaries from its metrics' results (which
    are updated in place with their phases). A failed non-dry-run metric makes the run
    terminating, as does `terminate`: metrics still running end as Argo ends them, and the run
    ends with its worst phase (Argo decides that a reconcile later; this decides it at once)."""
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
    worst, running = "", False
    worst_message = "Run Terminated" if terminate else ""
    for m in metrics:
        name, result = m["name"], results[m["name"]]
        phase, message = assess_metric(limits[name], result, terminating)
        result["phase"] = phase
        if message:
            result["message"] = message
        counts = dry_summary if dry[name] else summary
        counts["count"] += 1
        if not result["measurements"] or phase not in COMPLETED:
            # Argo has no MetricResult before a metric's first measurement, so such a metric
            # is counted in `count` only, like one still running.
            running = True
            continue
        # The summaries count what the limits say, not the metric's phase: a metric ended
        # Inconclusive or Failed by the count matrix counts as successful, as in Argo.
        breach, why = limit_breach(limits[name], result)
        counts[_SUMMARY_KEY.get(breach, "successful")] += 1
        if dry[name]:
            worst = worst or SUCCESSFUL
            continue
        if not worst or ORDER[phase] > ORDER[worst]:
            worst = phase
            if why:
                worst_message = f'Metric "{name}" assessed {phase} due to {why}'
                # Argo's result.Message: the last measurement's (a provider's error, say).
                last = result["measurements"][-1].get("message")
                if last:
                    worst_message += f': "Error Message: {last}"'
    out = {"summary": summary, "dry_summary": dry_summary}
    if terminating:
        # A terminating run ends now, even with a measurement still in flight: Argo
        # terminates those through their provider and returns the worst phase so far.
        return {**out, "phase": worst or SUCCESSFUL, "message": worst_message}
    if running or not worst:
        return {**out, "phase": RUNNING, "message": ""}
    return {**out, "phase": worst, "message": worst_message}


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


def close_in_flight(results: list[dict], now: datetime) -> None:
    """A run that ended (early stop, abort) with measurements still in flight: they end
    Inconclusive "Metric Terminated", as Argo terminates a measurement in progress, and are not
    counted; a late answer for them is discarded."""
    for result in results:
        measurements = result.get("measurements") or []
        if measurements and measurements[-1].get("phase") == RUNNING:
            measurements[-1] = {
                **measurements[-1],
                "phase": INCONCLUSIVE,
                "message": "Metric Terminated",
                "finishedAt": stamp(now),
            }


def fill_deferred(value: Any, secrets: dict[str, str]) -> Any:
    """`value` (a metric's provider config) with the deferred `{{args.name}}` placeholders
    filled in from `secrets`, for one measurement."""
    if isinstance(value, str):

        def one(match: re.Match) -> str:
            tag = match.group(1).strip()
            return (
                secrets.get(tag[5:], match.group(0)) if tag.startswith("args.") else match.group(0)
            )

        return _TAG.sub(one, value)
    if isinstance(value, dict):
        return {k: fill_deferred(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_deferred(v, secrets) for v in value]
    return value
