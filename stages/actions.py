"""Every state change of Stages and Promotions. Each runs in a transaction and broadcasts on commit."""

import json
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from ulid import ULID

from freight.models import Freight
from kargo import analysis
from kargo.conditions import condition, set_condition
from kargo.durations import duration_seconds, format_duration
from kargo.freight_ids import collection_id
from kargo.specs import ProjectConfigSpec, dump
from kargo.times import parse_rfc3339, rfc3339
from projects.actions import record_event
from projects.live import broadcast_on_commit
from projects.models import ProjectConfig
from projects.queue import enqueue_on_commit

from . import autopromotion
from .models import (
    AnalysisRun,
    ClusterPromotionTask,
    Promotion,
    PromotionPhase,
    PromotionTask,
    Stage,
)
from .queries import availability, latest_verification_of

ABORT_ANNOTATION = "kargo.akuity.io/abort"

log = logging.getLogger(__name__)


class PromotionError(ValueError):
    """A promotion request that cannot be honoured; the message is for the user."""


_ulid_lock = threading.Lock()
_last_ulid = 0


def monotonic_ulid() -> str:
    """A ULID that sorts after every one this process made before, even within one millisecond
    (as Go's ulid.Make does), so that name order is creation order."""
    global _last_ulid
    with _ulid_lock:
        value = max(int(ULID()), _last_ulid + 1)
        _last_ulid = value
        return str(ULID.from_int(value)).lower()


def promotion_name(stage_name: str, freight_name: str) -> str:
    """Kargo's `<stage>.<ULID>.<freight[:7]>`, lower case: name order is creation order."""
    return f"{stage_name}.{monotonic_ulid()}.{freight_name[:7]}"


def inflate_steps(stage: Stage) -> list[dict]:
    """The Stage's promotion template steps, with (Cluster)PromotionTask steps expanded into their
    own steps (aliases `<task-alias>::<step-alias>`) as Kargo's promotion webhook does."""
    steps = []
    for i, step in enumerate(stage.typed_spec.steps):
        if step.task is None:
            steps.append(dump(step))
            continue
        ref = step.task
        model = ClusterPromotionTask if ref.kind == "ClusterPromotionTask" else PromotionTask
        lookup = (
            {"name": ref.name}
            if model is ClusterPromotionTask
            else {"name": ref.name, "project": stage.project_id}
        )
        task = model.objects.filter(**lookup).first()
        if task is None:
            raise PromotionError(
                f"step {i + 1} uses {ref.kind or 'PromotionTask'} {ref.name}, which does not exist"
            )
        task_spec = task.typed_spec
        task_alias = step.as_ or f"task-{i + 1}"
        task_vars = {v.name: v.value for v in task_spec.vars or []}
        task_vars.update({v.name: v.value for v in step.vars or []})
        missing = [k for k, v in task_vars.items() if v is None]
        if missing:
            raise PromotionError(
                f"step {task_alias} does not set required task vars: {', '.join(missing)}"
            )
        for j, inner in enumerate(task_spec.steps):
            inner_alias = inner.as_ or f"step-{j + 1}"
            steps.append(
                {
                    **dump(inner),
                    "as": f"{task_alias}::{inner_alias}",
                    "vars": [{"name": k, "value": v} for k, v in task_vars.items()]
                    + [dump(v) for v in inner.vars or []],
                }
            )
    return steps


def do_promote(stage: Stage, freight: Freight, actor: str, name: str = "") -> Promotion:
    """Queue a Promotion of the Freight into the Stage (Kargo: create a Promotion resource).
    Without a name it gets Kargo's generated `<stage>.<ulid>.<freight>` name."""
    if stage.project_id != freight.project_id:
        raise PromotionError("Freight and Stage belong to different projects")
    ok, reason = availability(stage, freight)
    if not ok:
        raise PromotionError(
            f"Freight {freight.alias} is not available to Stage {stage.name}: {reason}"
        )
    if not stage.typed_spec.steps:
        raise PromotionError(
            f"Stage {stage.name} has no promotion steps (a control-flow Stage cannot be promoted to)"
        )
    # A person's promotion holds the Stage's auto-promotion, or resumes it (autopromotion).
    intent = autopromotion.promotion_intent(stage, freight, actor)
    with transaction.atomic():
        steps = inflate_steps(stage)
        template = stage.typed_spec.promotionTemplate
        promotion = Promotion.objects.create(
            project_id=stage.project_id,
            stage=stage,
            name=name or promotion_name(stage.name, freight.name),
            freight_name=freight.name,
            actor=actor,
            labels={"kargo.akuity.io/stage": stage.name},
            annotations={"kargo.akuity.io/create-actor": actor, **intent},
            spec={
                "stage": stage.name,
                "freight": freight.name,
                "vars": [dump(v) for v in template.spec.vars or []] if template else [],
                "steps": steps,
            },
            status={"phase": "Pending", "freight": freight.reference()},
            message="Waiting for the Stage to take this promotion",
        )
        record_event(
            stage.project,
            "PromotionCreated",
            actor,
            f"Promotion of Freight {freight.alias} to Stage {stage.name} created",
            f"Promotion/{promotion.name}",
        )
        # Work first, then the live update: each update is a round trip to the channel layer,
        # and a page renders whatever the promotion has become by the time it gets it.
        enqueue_on_commit("stages.tasks.start_next_promotion", stage.id)
        broadcast_on_commit(stage.project_id, "promotion", promotion.id)
    return promotion


def claim_token() -> str:
    """A new run's claim: `<host>:<pid>:<thread>:<random>`, so a run can be traced to its worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def do_start_next(stage_id: int, claimed_by: str | None = None) -> Promotion | None:
    """Kargo's queue: one promotion at a time per Stage, first in first out. Marks the head Running
    and claimed by the caller's run (`claimed_by`, a claim_token(); a new one when not given) in
    one transaction, and returns it for the caller to run: a promotion is never Running without a
    run that holds it. Of two workers starting the same Stage, the one that locks it first takes
    the head; the other finds it Running and gets None."""
    with transaction.atomic():
        stage = Stage.objects.select_for_update().get(id=stage_id)
        if Promotion.objects.filter(stage=stage, phase=PromotionPhase.RUNNING).exists():
            return None
        if verification_in_progress(stage):
            # The next promotion waits for the current Freight's verification; its end
            # (do_update_verification, do_abort_verification) starts the queue again.
            return None
        head = (
            Promotion.objects.filter(stage=stage, phase=PromotionPhase.PENDING)
            # Creation order, as Kargo's ComparePromotionByPhaseAndCreationTime; generated
            # names sort the same way, hand-given names need not.
            .order_by("created_at", "id")
            .first()
        )
        if head is None:
            return None
        now = timezone.now()
        head.stage = stage
        head.phase = PromotionPhase.RUNNING
        head.started_at = now
        # The claim is the run's first heartbeat: the run is live from here.
        head.heartbeat_at = now
        head.claimed_by = claimed_by or claim_token()
        head.resumes = 0
        head.message = ""
        collection = target_collection(stage, head)
        head.status = {
            **head.status,
            "phase": "Running",
            "startedAt": rfc3339(now),
            "currentStep": 0,
            "freightCollection": collection,
            "stepExecutionMetadata": [],
            "state": {},
        }
        head.save(
            update_fields=[
                "phase",
                "started_at",
                "heartbeat_at",
                "claimed_by",
                "resumes",
                "message",
                "status",
            ]
        )
        status = dict(stage.status)
        status["currentPromotion"] = {"name": head.name, "freight": head.status["freight"]}
        status["conditions"] = set_condition(
            status.get("conditions", []),
            condition(
                "Promoting", True, "ActivePromotion", f"Promotion {head.name} is running", now
            ),
        )
        stage.status = status
        stage.save(update_fields=["status"])
        broadcast_on_commit(stage.project_id, "stage", stage.id)
        broadcast_on_commit(stage.project_id, "promotion", head.id)
    return head


def target_collection(stage: Stage, promotion: Promotion) -> dict:
    """Kargo's buildTargetFreightCollection: the promoted Freight plus the Stage's current Freight
    of every other origin it requests."""
    freight = promotion.status["freight"]
    items = {}
    history = stage.status.get("freightHistory") or []
    if history:
        items.update(history[0].get("items", {}))
    items[f"{freight['origin']['kind']}/{freight['origin']['name']}"] = freight
    return {"id": collection_id([i["name"] for i in items.values()]), "items": items}


class LostOwnership(Exception):
    """The run is no longer this worker's: the promotion was ended elsewhere (abort, recovery) or
    handed to another worker (resumed after this one was taken for dead)."""


def do_step_progress(promotion: Promotion, claimed_by: str) -> None:
    """Save a running promotion's step progress (the engine calls it when a step changes state:
    started, finished, a new message), only while it is Running and still claimed by this run
    (`claimed_by`): a run whose promotion was ended elsewhere, or resumed by another worker, must
    not write over it. It beats the heartbeat too; the run's Heartbeat thread beats between."""
    now = timezone.now()
    saved = Promotion.objects.filter(
        id=promotion.id, phase=PromotionPhase.RUNNING, claimed_by=claimed_by
    ).update(status=promotion.status, heartbeat_at=now, updated_at=now)
    if not saved:
        raise LostOwnership(promotion.name)
    broadcast_on_commit(promotion.project_id, "promotion", promotion.id)


def stale_runs(cutoff):
    """Running promotions whose run has written no heartbeat since `cutoff`: their worker stopped
    (or, for a row an older version left Running without a claim, its run was never handed out)."""
    return Promotion.objects.filter(phase=PromotionPhase.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def do_finish(
    promotion: Promotion, phase: str, message: str, claimed_by: str | None = None
) -> bool:
    """Record a terminal promotion and update the Stage and Freight the way Kargo's controllers do.
    Returns False, changing nothing, when the promotion had already ended (finished once only),
    or, for a worker's finish (`claimed_by` given), when the run is no longer that worker's.

    Locks the Stage, then the Promotion: every action takes them in that order."""
    now = timezone.now()
    with transaction.atomic():
        stage = Stage.objects.select_for_update().get(id=promotion.stage_id)
        open_phases = [PromotionPhase.PENDING, PromotionPhase.RUNNING]
        owner = {} if claimed_by is None else {"claimed_by": claimed_by}
        if (
            not Promotion.objects.select_for_update()
            .filter(id=promotion.id, phase__in=open_phases, **owner)
            .exists()
        ):
            return False
        promotion.phase = phase
        promotion.message = message
        promotion.finished_at = now
        promotion.status = {
            **promotion.status,
            "phase": phase,
            "message": message,
            "finishedAt": rfc3339(now),
        }
        promotion.save(update_fields=["phase", "message", "finished_at", "status", "updated_at"])
        # The Stage's next promotion starts before this one's live updates go out (do_promote).
        enqueue_on_commit("stages.tasks.start_next_promotion", stage.id)
        if phase != PromotionPhase.ABORTED:
            # An aborted promotion's hold or resume intent is withdrawn with it (Kargo).
            apply_hold_intent(stage, promotion)
        if phase == PromotionPhase.SUCCEEDED:
            # Freight verified by this may now be auto-promoted further down.
            enqueue_on_commit("stages.tasks.auto_promote", stage.project_id)
        reason = {
            "Succeeded": "PromotionSucceeded",
            "Failed": "PromotionFailed",
            "Errored": "PromotionErrored",
            "Aborted": "PromotionAborted",
        }[phase]
        record_event(
            stage.project,
            reason,
            promotion.actor,
            f"Promotion {promotion.name} {phase.lower()}: {message}",
            f"Promotion/{promotion.name}",
        )
        broadcast_on_commit(stage.project_id, "promotion", promotion.id)
        # A queued promotion that ends (aborted while Pending) leaves the Stage as it is: the
        # Stage's state belongs to the promotion it is running, if any.
        if (stage.status.get("currentPromotion") or {}).get("name") == promotion.name:
            record_on_stage(stage, promotion, phase, message, now)
    return True


def do_recover(promotion_id: int, cutoff, max_resumes: int, claimed_by: str) -> str:
    """A Running promotion whose worker stopped (no heartbeat since `cutoff`): the caller's run
    (`claimed_by`, a claim_token()) takes it over, and re-runs its steps (engine.execute says why
    that is safe); or, once it was resumed `max_resumes` times, it ends Errored with the cause.
    The worker that resumes a promotion is the one that runs it: it is never handed out unclaimed.

    Under the Stage and Promotion locks, re-checked there: of two workers one takes it over, and a
    worker that beat in the meantime keeps its run. Returns "resumed" (the caller runs it),
    "errored" or "" (nothing to do)."""
    now = timezone.now()
    stage_id = Promotion.objects.filter(id=promotion_id).values_list("stage_id", flat=True).first()
    if stage_id is None:
        return ""
    with transaction.atomic():
        Stage.objects.select_for_update().filter(id=stage_id).first()
        promotion = stale_runs(cutoff).select_for_update().filter(id=promotion_id).first()
        if promotion is None:
            return ""
        metadata = [dict(m) for m in promotion.status.get("stepExecutionMetadata", [])]
        running = next((m for m in metadata if m.get("status") == "Running"), None)
        where = f" while running step {running['alias']}" if running else ""
        stopped = rfc3339(promotion.heartbeat_at or promotion.started_at)
        if promotion.resumes >= max_resumes:
            if running:
                running.update(
                    status="Errored",
                    finishedAt=rfc3339(now),
                    message="the worker stopped during this step",
                )
            promotion.status = {**promotion.status, "stepExecutionMetadata": metadata}
            tries = f"; it had been resumed {promotion.resumes} times" if promotion.resumes else ""
            do_finish(
                promotion,
                PromotionPhase.ERRORED,
                f"the worker running this promotion stopped{where} (last heartbeat {stopped})"
                f"{tries}; promote again to retry",
            )
            return "errored"
        resumes = promotion.resumes + 1
        note = (
            f"resumed after the worker stopped at {stopped}{where} "
            f"(resume {resumes} of at most {max_resumes})"
        )
        if running:
            running["message"] = f"the worker stopped during this step at {stopped}; resuming"
        promotion.resumes = resumes
        # The old run's claim ends here (its writes all check it); the new one's starts beating.
        promotion.claimed_by = claimed_by
        promotion.heartbeat_at = now
        promotion.message = note
        promotion.status = {**promotion.status, "stepExecutionMetadata": metadata, "message": note}
        promotion.save(
            update_fields=[
                "resumes",
                "claimed_by",
                "heartbeat_at",
                "message",
                "status",
                "updated_at",
            ]
        )
        record_event(
            promotion.project,
            "PromotionResumed",
            promotion.actor,
            f"Promotion {promotion.name} {note}",
            f"Promotion/{promotion.name}",
        )
        broadcast_on_commit(promotion.project_id, "promotion", promotion.id)
    return "resumed"


def record_on_stage(stage: Stage, promotion: Promotion, phase: str, message: str, now) -> None:
    status = dict(stage.status)
    status.pop("currentPromotion", None)
    status["lastPromotion"] = {
        "name": promotion.name,
        "freight": promotion.status["freight"],
        "status": {
            "phase": phase,
            "message": message,
            "finishedAt": rfc3339(now),
            "freightCollection": promotion.status.get("freightCollection"),
        },
        "finishedAt": rfc3339(now),
    }
    conditions = set_condition(
        status.get("conditions", []),
        condition(
            "Promoting", False, f"LastPromotion{phase}", message or f"Promotion {phase}", now
        ),
    )
    if phase == PromotionPhase.SUCCEEDED:
        collection = dict(promotion.status["freightCollection"])
        verification = new_verification(stage, promotion.actor, now)
        collection["verificationHistory"] = [verification]
        status["freightHistory"] = ([collection] + list(status.get("freightHistory") or []))[:10]
        conditions = set_condition(
            conditions, condition("Healthy", True, "Healthy", "Stage is healthy", now)
        )
        conditions = verification_conditions(conditions, verification, now)
        move_freight(stage, collection, verification["phase"] == "Successful", now)
        if verification["phase"] == "Pending":
            enqueue_on_commit("verification.tasks.start_verification", stage.id)
    else:
        conditions = set_condition(
            conditions,
            condition(
                "Ready", False, f"LastPromotion{phase}", message or f"Promotion {phase}", now
            ),
        )
    status["conditions"] = conditions
    stage.status = status
    stage.save(update_fields=["status", "updated_at"])
    broadcast_on_commit(stage.project_id, "stage", stage.id)


def move_freight(stage: Stage, collection: dict, verified: bool, now) -> None:
    """Update Freight status maps: the new collection is currently in the Stage (and verified in it
    when verification succeeded); Freight that left the Stage records its soak time."""
    names = [i["name"] for i in collection["items"].values()]
    involved = Freight.objects.select_for_update().filter(
        Q(name__in=names) | Q(status__currentlyIn__has_key=stage.name), project_id=stage.project_id
    )
    for freight in involved:
        current = freight.status.get("currentlyIn", {})
        status = dict(freight.status)
        currently_in = dict(current)
        verified_in = dict(status.get("verifiedIn", {}))
        if freight.name in names:
            currently_in.setdefault(stage.name, {"since": rfc3339(now)})
            if verified:
                verified_in.setdefault(stage.name, {"verifiedAt": rfc3339(now)})
        else:
            since = parse_rfc3339(currently_in.pop(stage.name)["since"])
            stay = (now - since).total_seconds()
            if stage.name in verified_in:
                longest = duration_seconds(verified_in[stage.name].get("longestSoak"))
                if stay > longest:
                    verified_in[stage.name] = {
                        **verified_in[stage.name],
                        "longestSoak": format_duration(timedelta(seconds=int(stay))),
                    }
        status["currentlyIn"] = currently_in
        status["verifiedIn"] = verified_in
        freight.status = status
        freight.save(update_fields=["status"])
        broadcast_on_commit(stage.project_id, "freight", freight.id)


def do_abort(promotion: Promotion, actor: str) -> None:
    """Kargo's abort annotation: a Pending promotion ends at once; a Running one stops before its
    next step (the worker checks between steps)."""
    with transaction.atomic():
        Stage.objects.select_for_update().filter(id=promotion.stage_id).first()
        promotion = Promotion.objects.select_for_update().get(id=promotion.id)
        if promotion.is_terminal:
            raise PromotionError(f"Promotion {promotion.name} already {promotion.phase}")
        promotion.annotations = {
            **promotion.annotations,
            ABORT_ANNOTATION: json.dumps({"action": "terminate", "actor": actor}),
        }
        promotion.save(update_fields=["annotations"])
        record_event(
            promotion.project,
            "PromotionAbortRequested",
            actor,
            f"Abort of Promotion {promotion.name} requested",
            f"Promotion/{promotion.name}",
        )
        if promotion.phase == PromotionPhase.PENDING:
            do_finish(promotion, PromotionPhase.ABORTED, f"Promotion terminated by {actor}")
        broadcast_on_commit(promotion.project_id, "promotion", promotion.id)


def do_refresh_stage(stage: Stage, actor: str) -> None:
    now = timezone.now()
    Stage.objects.filter(id=stage.id).update(
        # Sub-second precision: two refreshes in one second are two requests.
        annotations={**stage.annotations, "kargo.akuity.io/refresh": now.isoformat()}
    )
    record_event(
        stage.project,
        "StageRefreshRequested",
        actor,
        f"Refresh of Stage {stage.name} requested",
        f"Stage/{stage.name}",
    )
    enqueue_on_commit("stages.tasks.refresh_stage", stage.id)


def do_handle_refresh(stage_id: int) -> None:
    with transaction.atomic():
        stage = Stage.objects.select_for_update().get(id=stage_id)
        token = stage.annotations.get("kargo.akuity.io/refresh")
        if token and stage.status.get("lastHandledRefresh") != token:
            stage.status = {**stage.status, "lastHandledRefresh": token}
            stage.save(update_fields=["status"])
            broadcast_on_commit(stage.project_id, "stage", stage.id)


def do_init_stage_status(stage: Stage) -> None:
    """A new Stage has no Freight yet: Ready, with nothing to verify."""
    now = timezone.now()
    if stage.status.get("conditions"):
        return
    stage.status = {
        **stage.status,
        "conditions": [
            condition("Ready", True, "NoFreight", "No Freight has been promoted yet", now)
        ],
        "freightHistory": stage.status.get("freightHistory", []),
    }
    stage.save(update_fields=["status"])


def new_verification(stage: Stage, actor: str, now) -> dict:
    """A VerificationInfo for the Stage's current Freight. Without spec.verification Kargo records
    an immediate Successful verification; with it the verification is Pending until the
    verification app has created its AnalysisRun (verification.actions.do_start_verification)."""
    info = {"id": str(uuid.uuid4()), "actor": actor, "startTime": rfc3339(now)}
    if stage.typed_spec.verification:
        return {**info, "phase": "Pending", "message": "Waiting for the AnalysisRun to start"}
    return {**info, "phase": "Successful", "finishTime": rfc3339(now)}


VERIFICATION_REASONS = {
    "Successful": "Verified",
    "Failed": "VerificationFailed",
    "Error": "VerificationErrored",
    "Inconclusive": "VerificationInconclusive",
    "Aborted": "VerificationAborted",
}


def verification_conditions(conditions: list[dict], info: dict, now) -> list[dict]:
    """The Stage's Verified and Ready conditions for its latest verification: Unknown while it
    is Pending or Running (the Stage shows Verifying), then True or False with Kargo's reason."""
    phase = info.get("phase")
    if phase in ("Pending", "Running"):
        message = info.get("message") or "Verification in progress"
        conditions = set_condition(
            conditions, condition("Verified", None, "Verifying", message, now)
        )
        return set_condition(conditions, condition("Ready", None, "Verifying", message, now))
    ok = phase == "Successful"
    reason = VERIFICATION_REASONS.get(phase, "VerificationErrored")
    message = info.get("message") or ("Freight verified" if ok else f"Verification {phase}")
    conditions = set_condition(conditions, condition("Verified", ok, reason, message, now))
    return set_condition(
        conditions, condition("Ready", ok, reason, "Stage is ready" if ok else message, now)
    )


def latest_verification(stage: Stage) -> dict | None:
    """The newest VerificationInfo of the Stage's current Freight."""
    return latest_verification_of(stage.status)


def verification_in_progress(stage: Stage) -> bool:
    latest = latest_verification(stage)
    return bool(latest and latest.get("phase") in ("Pending", "Running"))


def do_update_verification(stage_id: int, info_id: str, changes: dict) -> Stage | None:
    """Write `changes` (phase, message, analysisRun, finishTime) into the VerificationInfo
    `info_id` of the Stage's current Freight (the verification app calls this as its run
    starts and ends). When it is the latest and it ended, the Stage's conditions follow it and,
    on Successful, the Freight is verified in the Stage; the Stage's queue may then move on.
    An info that is no longer the current Freight's (it moved on) changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        stage = Stage.objects.select_for_update().filter(id=stage_id).first()
        history = list((stage.status.get("freightHistory") or []) if stage else [])
        if not history:
            return None
        infos = list(history[0].get("verificationHistory") or [])
        index = next((i for i, v in enumerate(infos) if v.get("id") == info_id), None)
        if index is None:
            return None
        infos[index] = {**infos[index], **changes}
        history[0] = {**history[0], "verificationHistory": infos}
        status = {**stage.status, "freightHistory": history}
        if index == 0:
            status["conditions"] = verification_conditions(
                stage.status.get("conditions", []), infos[0], now
            )
        stage.status = status
        stage.save(update_fields=["status"])
        ended = index == 0 and infos[0].get("phase") not in ("Pending", "Running")
        if ended and infos[0]["phase"] == "Successful":
            mark_verified(stage, history[0], now)
            # Freight newly verified here may now auto-promote downstream.
            enqueue_on_commit("stages.tasks.auto_promote", stage.project_id)
        if ended:
            enqueue_on_commit("stages.tasks.start_next_promotion", stage.id)
        broadcast_on_commit(stage.project_id, "stage", stage.id)
    return stage


def mark_verified(stage: Stage, collection: dict, now) -> None:
    """The collection's Freight is verified in the Stage (soak counts from now)."""
    names = [i["name"] for i in (collection.get("items") or {}).values()]
    for freight in Freight.objects.select_for_update().filter(
        project_id=stage.project_id, name__in=names
    ):
        verified_in = dict(freight.status.get("verifiedIn", {}))
        if stage.name in verified_in:
            continue
        verified_in[stage.name] = {"verifiedAt": rfc3339(now)}
        freight.status = {**freight.status, "verifiedIn": verified_in}
        freight.save(update_fields=["status"])
        broadcast_on_commit(stage.project_id, "freight", freight.id)


def do_reverify(stage: Stage, actor: str) -> dict:
    """Kargo's reverify: a new verification of the Stage's current Freight. One in progress is
    stopped first."""
    now = timezone.now()
    with transaction.atomic():
        stage = Stage.objects.select_for_update().get(id=stage.id)
        history = list(stage.status.get("freightHistory") or [])
        if not history:
            raise PromotionError(f"Stage {stage.name} has no Freight to verify")
        superseded = latest_verification(stage) if verification_in_progress(stage) else None
        if superseded:
            # The run in progress stops; its verification is recorded as Aborted (Kargo's phase
            # for a verification that did not run to its end) before the new one starts.
            message = f"Superseded by a reverification requested by {actor}"
            run_ref = superseded.get("analysisRun")
            terminate_run(stage.project_id, run_ref, "Failed", message, now)
            if run_ref:
                superseded = {**superseded, "analysisRun": {**run_ref, "phase": "Failed"}}
            history[0] = {
                **history[0],
                "verificationHistory": [
                    {
                        **superseded,
                        "phase": "Aborted",
                        "message": message,
                        "finishTime": rfc3339(now),
                    },
                    *history[0]["verificationHistory"][1:],
                ],
            }
        info = new_verification(stage, actor, now)
        current = dict(history[0])
        current["verificationHistory"] = ([info] + list(current.get("verificationHistory") or []))[
            :10
        ]
        history[0] = current
        conditions = verification_conditions(stage.status.get("conditions", []), info, now)
        stage.status = {**stage.status, "freightHistory": history, "conditions": conditions}
        stage.save(update_fields=["status"])
        if info["phase"] == "Pending":
            enqueue_on_commit("verification.tasks.start_verification", stage.id)
        record_event(
            stage.project,
            "FreightVerificationRequested",
            actor,
            f"Reverification of Stage {stage.name} requested",
            f"Stage/{stage.name}",
        )
        broadcast_on_commit(stage.project_id, "stage", stage.id)
    return info


def do_abort_verification(stage: Stage, actor: str) -> None:
    """Kargo's abort: the running verification of the current Freight ends Failed with
    "Verification aborted by user" (Kargo records Failed, not Aborted) and the aborting actor;
    its AnalysisRun is terminated (no measurement starts after this commit, and one in flight is
    discarded when it returns)."""
    now = timezone.now()
    with transaction.atomic():
        stage = Stage.objects.select_for_update().get(id=stage.id)
        history = list(stage.status.get("freightHistory") or [])
        latest = latest_verification(stage)
        if not latest or latest.get("phase") not in ("Pending", "Running"):
            raise PromotionError(f"Stage {stage.name} has no verification in progress to abort")
        message = "Verification aborted by user"
        run_ref = latest.get("analysisRun") or {}
        aborted = {
            **latest,
            "actor": actor,
            "phase": "Failed",
            "message": message,
            "finishTime": rfc3339(now),
        }
        if run_ref:
            aborted["analysisRun"] = {**run_ref, "phase": "Failed"}
        terminate_run(stage.project_id, run_ref, "Failed", message, now)
        history[0] = {
            **history[0],
            "verificationHistory": [aborted, *history[0]["verificationHistory"][1:]],
        }
        conditions = verification_conditions(stage.status.get("conditions", []), aborted, now)
        stage.status = {**stage.status, "freightHistory": history, "conditions": conditions}
        stage.save(update_fields=["status"])
        record_event(
            stage.project,
            "FreightVerificationAborted",
            actor,
            f"Verification of Stage {stage.name} aborted by {actor}",
            f"Stage/{stage.name}",
        )
        enqueue_on_commit("stages.tasks.start_next_promotion", stage.id)
        broadcast_on_commit(stage.project_id, "stage", stage.id)


def terminate_run(project_id: int, run_ref: dict | None, phase: str, message: str, now) -> None:
    """End the AnalysisRun a verification started (spec.terminate, as Argo's TerminateRun): no
    measurement starts after this commit, and one in flight is discarded when it returns."""
    run = (
        AnalysisRun.objects.select_for_update()
        .filter(project_id=project_id, name=(run_ref or {}).get("name"))
        .first()
    )
    if run is None or run.status.get("completedAt"):
        return
    run.spec = {**run.spec, "terminate": True}
    results = [dict(r) for r in run.status.get("metricResults") or []]
    analysis.close_in_flight(results, now)
    run.status = {
        **run.status,
        "phase": phase,
        "message": message,
        "metricResults": results,
        "completedAt": rfc3339(now),
    }
    run.next_measure_at = None
    run.save(update_fields=["spec", "status", "next_measure_at"])
    broadcast_on_commit(project_id, "analysisrun", run.id)


def do_delete_stage(stage: Stage, actor: str) -> None:
    """Delete a Stage and, as Kargo's reconcilers do, clear it from every Freight's status
    (currentlyIn, verifiedIn, approvedFor) so no Freight points at a Stage that is gone."""
    with transaction.atomic():
        involved = Freight.objects.select_for_update().filter(
            Q(status__currentlyIn__has_key=stage.name)
            | Q(status__verifiedIn__has_key=stage.name)
            | Q(status__approvedFor__has_key=stage.name),
            project_id=stage.project_id,
        )
        for freight in involved:
            status = dict(freight.status)
            changed = False
            for key in ("currentlyIn", "verifiedIn", "approvedFor"):
                if stage.name in status.get(key, {}):
                    status[key] = {k: v for k, v in status[key].items() if k != stage.name}
                    changed = True
            if changed:
                freight.status = status
                freight.save(update_fields=["status"])
        record_event(
            stage.project,
            "StageDeleted",
            actor,
            f"Stage {stage.name} deleted",
            f"Stage/{stage.name}",
        )
        project_id, stage_id = stage.project_id, stage.id
        stage.delete()
        broadcast_on_commit(project_id, "stage", stage_id)


# ---------------------------------------------------------------------------- auto-promotion


def apply_hold_intent(stage: Stage, promotion: Promotion) -> None:
    """An ended (not aborted) promotion's hold or resume intent becomes the Stage's durable
    `status.autoPromotionHolds` (Kargo's syncPromotions replay), while auto-promotion is on (off,
    holds mean nothing: the reconcile clears them). The caller holds the Stage's lock, and what
    it saves of the Stage after this it builds from `stage.status`."""
    intent = promotion.annotations
    if not (
        intent.get(autopromotion.HOLD_ANNOTATION) or intent.get(autopromotion.RESUME_ANNOTATION)
    ):
        return
    if not autopromotion.enabled_now(stage):
        return
    requested = {autopromotion.origin_key(o) for o in autopromotion.origins(stage)}
    held = stage.status.get("autoPromotionHolds") or {}
    holds = autopromotion.held_with(held, promotion, requested)
    if holds == held:
        return
    status = {k: v for k, v in stage.status.items() if k != "autoPromotionHolds"}
    if holds:
        status["autoPromotionHolds"] = holds
    stage.status = status
    stage.save(update_fields=["status"])
    broadcast_on_commit(stage.project_id, "stage", stage.id)


def auto_promotion_status(status: dict, stage: Stage, enabled: bool, open_promotions) -> dict:
    """The Stage's status with auto-promotion's fields as they should be: autoPromotionEnabled
    (omitted when false, as Kargo's omitempty does), the durable holds (none while disabled, none
    for origins no longer requested) and the effective holds (durable plus open intent)."""
    status = {
        k: v
        for k, v in status.items()
        if k not in ("autoPromotionEnabled", "autoPromotionHolds", "effectiveAutoPromotionHolds")
    }
    if not enabled:
        return status
    status["autoPromotionEnabled"] = True
    requested = {autopromotion.origin_key(o) for o in autopromotion.origins(stage)}
    held = {
        k: v for k, v in (stage.status.get("autoPromotionHolds") or {}).items() if k in requested
    }
    if held:
        status["autoPromotionHolds"] = held
    effective = autopromotion.effective_holds(held, autopromotion.origins(stage), open_promotions)
    if effective:
        status["effectiveAutoPromotionHolds"] = effective
    return status


def sync_auto_promotion_status(stage: Stage, enabled: bool, open_promotions) -> None:
    """Write the Stage's auto-promotion status fields when they changed (under the Stage's lock,
    read again: a promotion may be ending meanwhile); nothing is written when they did not."""
    if auto_promotion_status(stage.status, stage, enabled, open_promotions) == stage.status:
        return
    with transaction.atomic():
        locked = Stage.objects.select_for_update().get(id=stage.id)
        wanted = auto_promotion_status(locked.status, locked, enabled, open_promotions)
        if wanted != locked.status:
            locked.status = wanted
            locked.save(update_fields=["status"])
            broadcast_on_commit(locked.project_id, "stage", locked.id)
        stage.status = locked.status


def promote_candidate(stage: Stage, freight: Freight) -> Promotion | None:
    """Auto-promote the Freight into the Stage unless, under the Stage's lock, it turns out
    current, already on its way, or failed last time (a second reconcile got there first)."""
    with transaction.atomic():
        locked = Stage.objects.select_for_update().get(id=stage.id)
        if autopromotion.current_in(locked.status, freight.origin_name) == freight.name:
            return None
        open_phases = autopromotion.OPEN_PHASES
        if Promotion.objects.filter(
            stage=locked, freight_name=freight.name, phase__in=open_phases
        ).exists():
            return None
        if autopromotion.last_attempt_failed(locked, freight.name):
            return None
        return do_promote(stage, freight, autopromotion.CONTROLLER_ACTOR)


def do_auto_promote(project_id: int) -> list[Promotion]:
    """One auto-promotion pass over a project (stages.autopromotion has the rules): mirror each
    Stage's policy in its status, and promote each enabled Stage's candidate Freight, per origin,
    unless it is current, on its way, failed last time, or held. Returns the promotions made.

    Reads: the ProjectConfig, the Stages and their open promotions (three queries), then per
    enabled Stage and origin its candidate; a promotion's history only for a candidate that is
    not current yet. A policy that cannot be evaluated stops the pass (logged), as it stops
    Kargo's Stage reconcile, until it is fixed."""
    policies = autopromotion.policies_of(project_id)
    stages = list(Stage.objects.filter(project_id=project_id).select_related("project"))
    try:
        enabled = {s.id: autopromotion.enables(policies, s.name, s.labels) for s in stages}
    except autopromotion.PolicyError as exc:
        log.warning("auto-promotion in project %s stopped: %s", project_id, exc)
        return []
    opened = autopromotion.open_promotions([s.id for s in stages if enabled[s.id]])
    for stage in stages:
        sync_auto_promotion_status(stage, enabled[stage.id], opened.get(stage.id, []))
    by_name = {s.name: s for s in stages}
    scans: dict[str, autopromotion.FreightScan] = {}
    created = []
    for stage in stages:
        if not enabled[stage.id] or not stage.typed_spec.steps:
            continue  # a control-flow Stage takes no promotions
        held = stage.status.get("effectiveAutoPromotionHolds") or {}
        for origin in autopromotion.origins(stage):
            if autopromotion.origin_key(origin) in held:
                continue
            pick = autopromotion.candidate(stage, origin, by_name, scans)
            if pick is None or autopromotion.current_in(stage.status, origin) == pick.name:
                continue
            if any(p.freight_name == pick.name for p in opened[stage.id]):
                continue
            if autopromotion.last_attempt_failed(stage, pick.name):
                continue
            try:
                promotion = promote_candidate(stage, pick)
            except PromotionError as exc:
                # A promotion the Stage cannot take (a missing PromotionTask, say) is the
                # Stage's to fix; the next pass tries again.
                log.warning("auto-promotion of %s into %s: %s", pick.name, stage.name, exc)
                continue
            if promotion is not None:
                created.append(promotion)
    return created


class AutoPromotionError(ValueError):
    """A change of auto-promotion that cannot be made; the message is for the user."""


def do_set_auto_promotion(project, stage_name: str, enabled: bool, actor: str) -> ProjectConfig:
    """Turn auto-promotion of one Stage on or off, where Kargo keeps it: a `stage: <name>` policy
    in the project's ProjectConfig (created when the project has none), first in the list unless
    the policy already deciding for the Stage is that one, so that it is the one that decides.
    The Stage's status follows at once; turning it off clears the Stage's holds, turning it on
    starts the Stage's candidate on its way."""
    with transaction.atomic():
        stage = Stage.objects.select_for_update().filter(project=project, name=stage_name).first()
        if stage is None:
            raise AutoPromotionError(f"Stage {stage_name!r} not found in project {project.name}")
        config = ProjectConfig.objects.select_for_update().filter(project=project).first()
        created = config is None
        if created:
            config = ProjectConfig(project=project, name=project.name, spec={})
        before = config.spec.get("promotionPolicies")
        policies = [dict(p) for p in before or []]
        typed = autopromotion.policies_in({"promotionPolicies": policies})
        try:
            deciding = autopromotion.matching_policy(typed, stage.name, stage.labels)
        except autopromotion.PolicyError:
            deciding = None  # a broken policy cannot decide: ours goes first
        if deciding is not None and deciding.stage == stage.name:
            policies[typed.index(deciding)]["autoPromotionEnabled"] = enabled
        else:
            policies = [p for p in policies if p.get("stage") != stage.name]
            policies.insert(0, {"stage": stage.name, "autoPromotionEnabled": enabled})
        spec = dump(
            ProjectConfigSpec.model_validate({**config.spec, "promotionPolicies": policies})
        )
        if spec != config.spec:
            config.spec = spec
            if created:
                config.save()
            else:
                config.generation += 1
                config.save(update_fields=["spec", "generation"])
        record_event(
            project,
            "AutoPromotionEnabled" if enabled else "AutoPromotionDisabled",
            actor,
            f"Auto-promotion of Stage {stage.name} {'enabled' if enabled else 'disabled'} "
            f"(ProjectConfig {config.name})",
            f"Stage/{stage.name}",
            before={"promotionPolicies": before},
            after={"promotionPolicies": spec["promotionPolicies"]},
        )
        opened = autopromotion.open_promotions([stage.id]) if enabled else {}
        wanted = auto_promotion_status(stage.status, stage, enabled, opened.get(stage.id, []))
        if wanted != stage.status:
            stage.status = wanted
            stage.save(update_fields=["status"])
        broadcast_on_commit(project.id, "stage", stage.id)
        if enabled:
            enqueue_on_commit("stages.tasks.auto_promote", project.id)
    return config


def do_set_stage_metadata(stage: Stage, values: dict) -> Stage:
    """The set-metadata step for a Stage: each key of `values` set in status.metadata (Kargo's
    StageStatus.UpsertMetadata), the others kept."""
    with transaction.atomic():
        stage = Stage.objects.select_for_update().get(id=stage.id)
        metadata = {**(stage.status.get("metadata") or {}), **values}
        stage.status = {**stage.status, "metadata": metadata}
        stage.save(update_fields=["status"])
        broadcast_on_commit(stage.project_id, "stage", stage.id)
    return stage
