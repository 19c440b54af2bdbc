"""Verification's state changes: a Stage's pending verification becomes an AnalysisRun, and the
run's measurements are taken and recorded, the Argo Rollouts way (kargo.analysis holds the
rules). The database is the truth: a measurement is marked in flight before its provider is
called and recorded after, each in its own transaction, so a worker killed between the two
delays the run (the in-flight mark expires and the measurement is taken again) but never
strands or corrupts it.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ulid import ULID

from kargo import analysis
from kargo.analysis import AnalysisError
from kargo.expressions import ExpressionError, evaluate_template
from kargo.redaction import redact
from kargo.times import parse_rfc3339, rfc3339
from projects.actions import record_event
from projects.credentials import generic
from projects.live import broadcast_on_commit
from projects.queue import enqueue_later_on_commit, enqueue_on_commit
from stages.actions import do_update_verification, latest_verification
from stages.models import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, Stage

from .providers import Measured, MeasurementError, unavailable
from .providers import measure as provider_measure

log = logging.getLogger(__name__)

MAX_TEMPLATE_DEPTH = 10
STAGE_LABEL = "kargo.akuity.io/stage"
FREIGHT_COLLECTION_LABEL = "kargo.akuity.io/freight-collection"


def measurement_timeout() -> float:
    return float(settings.VERIFICATION_MEASUREMENT_TIMEOUT)


def lease() -> timedelta:
    """How long a measurement may stay in flight before it is taken as lost with its worker: its
    timeout, plus the silence after which a promotion's worker is taken for dead."""
    return timedelta(seconds=measurement_timeout() + settings.PROMOTION_HEARTBEAT_TIMEOUT)


# --- starting a run --------------------------------------------------------------------------


def template_specs(stage: Stage) -> list[tuple[str, dict]]:
    """(name, spec) of every AnalysisTemplate the Stage's verification names, nested `templates`
    flattened depth first. A missing template is an AnalysisError that names it."""
    refs = [
        (r.name, r.kind == "ClusterAnalysisTemplate")
        for r in stage.typed_spec.verification.analysisTemplates or []
    ]
    out: list[tuple[str, dict]] = []

    def add(name: str, cluster: bool, trail: tuple[str, ...]) -> None:
        if len(trail) > MAX_TEMPLATE_DEPTH:
            raise AnalysisError(
                f"templates nest deeper than {MAX_TEMPLATE_DEPTH}: {' -> '.join(trail)}"
            )
        if name in trail:
            raise AnalysisError(f"templates include each other: {' -> '.join((*trail, name))}")
        if cluster:
            template = ClusterAnalysisTemplate.objects.filter(name=name).first()
            kind = "ClusterAnalysisTemplate"
        else:
            template = AnalysisTemplate.objects.filter(
                project_id=stage.project_id, name=name
            ).first()
            kind = "AnalysisTemplate"
        if template is None:
            where = "" if cluster else f" in project {stage.project.name}"
            raise AnalysisError(f"{kind} {name!r} not found{where}")
        out.append((name, template.spec))
        for nested in template.spec.get("templates") or []:
            add(nested.get("templateName") or "", bool(nested.get("clusterScope")), (*trail, name))

    for name, cluster in refs:
        add(name, cluster, ())
    if not out:
        raise AnalysisError("the Stage's verification names no AnalysisTemplates")
    return out


def stage_args(stage: Stage) -> list[dict]:
    """The Stage's verification args, `${{ }}` evaluated over ctx (project, stage) as Kargo
    does."""
    env = {"ctx": {"project": stage.project.name, "stage": stage.name}}
    out = []
    for arg in stage.typed_spec.verification.args or []:
        try:
            value = evaluate_template(arg.value, env)
        except ExpressionError as exc:
            raise AnalysisError(f"verification args.{arg.name}: {exc}") from None
        out.append({"name": arg.name, "value": value if isinstance(value, str) else str(value)})
    return out


def secret_args(project_id: int, spec: dict) -> dict[str, str]:
    """The values of the run's args taken from a Secret (`valueFrom.secretKeyRef`): generic
    credentials of the run's project, as Argo reads Secrets of the run's namespace only."""
    values = {}
    for arg, (name, key) in analysis.secret_refs(spec).items():
        data = generic(project_id, name)
        if data is None:
            raise AnalysisError(
                f"args.{arg}: Secret {name!r} not found among the project's generic credentials"
            )
        if key not in data:
            raise AnalysisError(f"args.{arg}: Secret {name!r} has no key {key!r}")
        values[arg] = data[key]
    return values


def build_run_spec(stage: Stage) -> dict:
    """The run's spec. Args from Secrets are checked now but stay placeholders in the stored
    spec (a secret is never saved in a run, shown or exported): each measurement fills them in."""
    merged = analysis.merge_templates(template_specs(stage), stage_args(stage))
    secret_args(stage.project_id, merged)
    spec = analysis.resolve_args(merged, deferred=set(analysis.secret_refs(merged)))
    analysis.validate_run_spec(spec)
    for metric in spec["metrics"]:
        reason = unavailable(metric["provider"])
        if reason:
            raise AnalysisError(f"metrics[{metric['name']}]: {reason}")
    return spec


def do_start_verification(stage_id: int) -> AnalysisRun | None:
    """The Stage's latest verification, if Pending and without a run, gets its AnalysisRun (or
    ends Error with the exact reason it cannot: a missing template or arg, an invalid metric)."""
    now = timezone.now()
    with transaction.atomic():
        stage = (
            Stage.objects.select_for_update().select_related("project").filter(id=stage_id).first()
        )
        info = latest_verification(stage) if stage else None
        if not info or info.get("phase") != "Pending" or info.get("analysisRun"):
            return None
        if not stage.typed_spec.verification:
            do_update_verification(
                stage.id, info["id"], {"phase": "Successful", "finishTime": rfc3339(now)}
            )
            return None
        try:
            spec = build_run_spec(stage)
        except AnalysisError as exc:
            do_update_verification(
                stage.id,
                info["id"],
                {"phase": "Error", "message": str(exc), "finishTime": rfc3339(now)},
            )
            record_event(
                stage.project,
                "FreightVerificationErrored",
                "controller",
                f"Verification of Stage {stage.name} could not start: {exc}",
                f"Stage/{stage.name}",
            )
            return None
        metadata = stage.typed_spec.verification.analysisRunMetadata
        collection = (stage.status.get("freightHistory") or [{}])[0].get("id", "")
        labels = {
            **((metadata.labels or {}) if metadata else {}),
            STAGE_LABEL: stage.name,
            FREIGHT_COLLECTION_LABEL: collection,
        }
        results = [
            analysis.new_result(m["name"], analysis.is_dry_run(spec, m["name"]))
            for m in spec["metrics"]
        ]
        run = AnalysisRun.objects.create(
            project_id=stage.project_id,
            stage=stage,
            name=f"{stage.name}.{str(ULID()).lower()}",
            labels=labels,
            annotations={**((metadata.annotations or {}) if metadata else {})},
            spec=spec,
            status={
                "phase": "Running",
                "startedAt": analysis.stamp(now),
                "metricResults": results,
            },
            next_measure_at=now,
        )
        ref = {"name": run.name, "namespace": stage.project.name, "phase": "Running"}
        do_update_verification(
            stage.id, info["id"], {"phase": "Running", "analysisRun": ref, "message": ""}
        )
        record_event(
            stage.project,
            "AnalysisRunStarted",
            info.get("actor") or "controller",
            f"AnalysisRun {run.name} started for Stage {stage.name}",
            f"AnalysisRun/{run.name}",
        )
        broadcast_on_commit(stage.project_id, "analysisrun", run.id)
        enqueue_on_commit("verification.tasks.measure_run", run.id)
    return run


# --- measuring -------------------------------------------------------------------------------


def results_of(run: AnalysisRun) -> dict[str, dict]:
    return {r["name"]: r for r in run.status.get("metricResults") or []}


def run_started_at(run: AnalysisRun) -> datetime:
    return parse_rfc3339(run.status.get("startedAt")) or run.created_at


def do_take_due(run_id: int) -> list[tuple[dict, str]]:
    """Mark every metric of the run whose measurement is due as in flight, and return (metric,
    its measurement's startedAt) for each: the caller measures them and calls do_record. A
    measurement in flight past its lease (its worker died) is dropped and taken again."""
    now = timezone.now()
    held_for = lease()
    with transaction.atomic():
        run = AnalysisRun.objects.select_for_update().filter(id=run_id).first()
        if (
            run is None
            or run.status.get("phase") in analysis.COMPLETED
            or run.spec.get("terminate")
        ):
            return []
        results = results_of(run)
        started = run_started_at(run)
        taken = []
        for metric in run.spec["metrics"]:
            result = results[metric["name"]]
            measurements = result["measurements"]
            if measurements and measurements[-1]["phase"] == analysis.RUNNING:
                since = parse_rfc3339(measurements[-1]["startedAt"])
                if since and now - since < held_for:
                    continue
                log.warning(
                    "AnalysisRun %s metric %s: measurement started %s was lost; taking it again",
                    run.name,
                    metric["name"],
                    measurements[-1]["startedAt"],
                )
                measurements.pop()
            due = analysis.next_due(analysis.limits_of(metric), result, started)
            if due is not None and due <= now:
                mark = analysis.start_measurement(now)
                measurements.append(mark)
                taken.append((metric, mark["startedAt"]))
        if taken:
            run.next_measure_at = now + held_for
            run.save(update_fields=["status", "next_measure_at"])
    return taken


def run_secrets(run_id: int) -> dict[str, str] | AnalysisError:
    """The secret args of a run, read afresh for its measurements (a rotated Secret is used at
    once), or why they cannot be read (the measurements are then Errors saying so)."""
    run = AnalysisRun.objects.filter(id=run_id).only("project_id", "spec").first()
    if run is None or not analysis.secret_refs(run.spec):
        return {}
    try:
        return secret_args(run.project_id, run.spec)
    except AnalysisError as exc:
        return exc


def measure(metric: dict, secrets: dict[str, str] | AnalysisError) -> Measured | MeasurementError:
    """The provider's answer, or the error that makes the measurement Error. Nothing the
    provider says may carry a secret arg's value back into the run."""
    if isinstance(secrets, AnalysisError):
        return MeasurementError(str(secrets))
    try:
        outcome = provider_measure(
            analysis.fill_deferred(metric["provider"], secrets), measurement_timeout()
        )
    except MeasurementError as exc:
        return MeasurementError(hide_secrets(str(exc), secrets))
    if secrets and isinstance(outcome.value, str):
        outcome.value = hide_secrets(outcome.value, secrets)
    return outcome


def hide_secrets(text: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text


def finished_measurement(metric: dict, started_at: str, outcome, now) -> dict:
    measurement = {"startedAt": started_at, "finishedAt": analysis.stamp(now)}
    if isinstance(outcome, MeasurementError):
        return {**measurement, "phase": analysis.ERROR, "message": redact(str(outcome))}
    if outcome.metadata:
        measurement["metadata"] = outcome.metadata
    measurement["value"] = analysis.format_value(outcome.value)
    if outcome.phase:
        return {**measurement, "phase": outcome.phase, "message": outcome.message}
    try:
        phase = analysis.evaluate_result(metric, outcome.value)
    except AnalysisError as exc:
        return {**measurement, "phase": analysis.ERROR, "message": str(exc)}
    return {**measurement, "phase": phase}


def do_record(run_id: int, outcomes: list[tuple[dict, str, object]]) -> AnalysisRun | None:
    """Record finished measurements (metric, startedAt, Measured or MeasurementError), assess the
    run, and either schedule its next measurement or end it and tell the Stage. A measurement
    whose in-flight mark is gone (the run was aborted, or its lease expired and another worker
    took it) is discarded."""
    now = timezone.now()
    with transaction.atomic():
        run = (
            AnalysisRun.objects.select_for_update()
            .select_related("project")
            .filter(id=run_id)
            .first()
        )
        if run is None or run.status.get("phase") in analysis.COMPLETED:
            return None
        results = results_of(run)
        for metric, started_at, outcome in outcomes:
            result = results[metric["name"]]
            measurements = result["measurements"]
            if not measurements or measurements[-1] != {
                "phase": analysis.RUNNING,
                "startedAt": started_at,
            }:
                continue
            measurements.pop()
            analysis.record_measurement(
                result,
                finished_measurement(metric, started_at, outcome, now),
                analysis.retention_limit(run.spec, metric["name"]),
            )
        assessed = analysis.assess_run(run.spec, results, bool(run.spec.get("terminate")))
        status = {
            **run.status,
            "phase": assessed["phase"],
            "metricResults": list(results.values()),
            "runSummary": assessed["summary"],
        }
        if any(assessed["dry_summary"].values()):
            status["dryRunSummary"] = assessed["dry_summary"]
        if assessed["message"]:
            status["message"] = assessed["message"]
        completed = assessed["phase"] in analysis.COMPLETED
        if completed:
            analysis.close_in_flight(status["metricResults"], now)
            status["completedAt"] = rfc3339(now)
            run.next_measure_at = None
        else:
            run.next_measure_at = next_measure_at(run.spec, results, run_started_at(run), now)
        run.status = status
        run.save(update_fields=["status", "next_measure_at"])
        broadcast_on_commit(run.project_id, "analysisrun", run.id)
        if completed:
            finish_verification(run, now)
        elif run.next_measure_at is not None:
            delay = max(0.0, (run.next_measure_at - now).total_seconds())
            enqueue_later_on_commit("verification.tasks.measure_run", delay, run.id)
    return run


def next_measure_at(spec: dict, results: dict, started: datetime, now) -> datetime | None:
    """The earliest due time of the run's metrics; a metric in flight holds the run for its
    lease."""
    times = []
    for metric in spec["metrics"]:
        result = results[metric["name"]]
        if result["phase"] in analysis.COMPLETED:
            continue
        if result["measurements"] and result["measurements"][-1]["phase"] == analysis.RUNNING:
            times.append(now + lease())
            continue
        due = analysis.next_due(analysis.limits_of(metric), result, started)
        if due is not None:
            times.append(due)
    return min(times) if times else now


def finish_verification(run: AnalysisRun, now) -> None:
    """The run ended: the Stage's verification that started it takes its phase and message."""
    if run.stage_id is None:
        return
    stage = Stage.objects.filter(id=run.stage_id).first()
    info = next(
        (
            v
            for c in (stage.status.get("freightHistory") or [] if stage else [])
            for v in c.get("verificationHistory") or []
            if (v.get("analysisRun") or {}).get("name") == run.name
        ),
        None,
    )
    if info is None:
        return
    phase = run.status["phase"]
    do_update_verification(
        run.stage_id,
        info["id"],
        {
            "phase": phase,
            "message": run.status.get("message", ""),
            "finishTime": rfc3339(now),
            "analysisRun": {**info["analysisRun"], "phase": phase},
        },
    )
    record_event(
        run.project,
        f"AnalysisRun{phase}",
        "controller",
        f"AnalysisRun {run.name} {phase}"
        + (f": {run.status['message']}" if run.status.get("message") else ""),
        f"AnalysisRun/{run.name}",
    )
