"""The promotion runner: executes a Running promotion's steps in order, recording each step's
status, timing, evaluated config and outputs so a page can show them while they happen."""

import json
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from freight.models import Freight
from kargo.expressions import ExpressionError, evaluate_template
from kargo.redaction import redact_values
from kargo.specs import ExpressionVariable, PromotionOnlyStep
from kargo.times import rfc3339
from projects.repos import RepoNotAllowed, check_repo_url, repo_urls_in

from . import actions
from .models import Promotion, PromotionPhase
from .steps import UnknownStepError, get_step
from .steps.base import StepContext, StepError

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0
RETRY_DELAY = 1.0  # seconds before a retried step runs again, growing with each error
FAILED_STEP_STATES = {"Failed", "Errored"}


def work_dir_for(promotion: Promotion) -> Path:
    return settings.DATA_DIR / "work" / promotion.project.name / promotion.name


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Heartbeat:
    """Touches the promotion's heartbeat while a step runs, so the reconciler can tell a slow step
    from a dead worker."""

    def __init__(self, promotion_id: int):
        self.promotion_id = promotion_id
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"heartbeat-{promotion_id}"
        )

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_EVERY):
            try:
                Promotion.objects.filter(id=self.promotion_id, phase=PromotionPhase.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
            except Exception:
                # A missed beat (a locked database, a dropped connection) must not end the
                # heartbeat: the next one may succeed, and silence would get the run declared lost.
                log.exception("heartbeat for promotion %s failed", self.promotion_id)
            finally:
                close_old_connections()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)


def claim(promotion_id: int) -> Promotion | None:
    """Take a Running promotion that no worker has taken yet. Two workers never run one promotion."""
    token = worker_id()
    # The claim is one conditional UPDATE: whoever flips heartbeat_at from NULL owns the run.
    taken = Promotion.objects.filter(
        id=promotion_id, phase=PromotionPhase.RUNNING, heartbeat_at__isnull=True
    ).update(heartbeat_at=timezone.now())
    if not taken:
        return None
    promotion = Promotion.objects.select_related("project", "stage").get(id=promotion_id)
    log.info("worker %s runs promotion %s", token, promotion.name)
    return promotion


def build_env(
    promotion: Promotion, freight_alias: str, step_states: dict[str, str], tolerated: set[str]
) -> dict:
    """The expression environment of Kargo's promotion steps. `status(alias)` gives a step's real
    status; success()/failure() ignore failures of continueOnError steps (`tolerated`)."""
    collection = promotion.status.get("freightCollection", {}).get("items", {})
    freight = promotion.status["freight"]

    def artifacts(key):
        return [(ref["origin"]["name"], a) for ref in collection.values() for a in ref.get(key, [])]

    def pick(key, repo_url, origin=None, chart_name=None):
        for origin_name, item in artifacts(key):
            if item.get("repoURL") != repo_url:
                continue
            if chart_name is not None and item.get("name") != chart_name:
                continue
            if origin is not None and origin.get("Name") != origin_name:
                continue
            return item
        return None

    def commit_from(repo_url, origin=None):
        c = pick("commits", repo_url, origin)
        return c and {
            "RepoURL": c.get("repoURL"),
            "ID": c.get("id"),
            "Branch": c.get("branch", ""),
            "Tag": c.get("tag", ""),
            "Message": c.get("message", ""),
            "Author": c.get("author", ""),
            "Committer": c.get("committer", ""),
        }

    def image_from(repo_url, origin=None):
        i = pick("images", repo_url, origin)
        return i and {
            "RepoURL": i.get("repoURL"),
            "Tag": i.get("tag", ""),
            "Digest": i.get("digest", ""),
            "Annotations": i.get("annotations", {}),
        }

    def chart_from(repo_url, name_or_origin=None, origin=None):
        name = name_or_origin if isinstance(name_or_origin, str) else None
        origin = name_or_origin if isinstance(name_or_origin, dict) else origin
        c = pick("charts", repo_url, origin, name)
        return c and {
            "RepoURL": c.get("repoURL"),
            "Name": c.get("name", ""),
            "Version": c.get("version", ""),
        }

    def failed():
        return any(s in FAILED_STEP_STATES for a, s in step_states.items() if a not in tolerated)

    return {
        "ctx": {
            "project": promotion.project.name,
            "stage": promotion.stage.name,
            "promotion": promotion.name,
            "targetFreight": {
                "name": freight["name"],
                "alias": freight_alias,
                "origin": {"name": freight["origin"]["name"]},
            },
            "meta": {"promotion": {"actor": promotion.actor, "rollback": False}},
        },
        "commitFrom": commit_from,
        "imageFrom": image_from,
        "chartFrom": chart_from,
        "warehouse": lambda name: {"Kind": "Warehouse", "Name": name},
        "success": lambda: not failed(),
        "failure": failed,
        "always": lambda: True,
        "status": lambda alias: step_states.get(alias, ""),
    }


def evaluate_vars(var_list: list[ExpressionVariable] | None, env: dict, into: dict) -> dict:
    """Vars are evaluated in order, each seeing the ones before it."""
    out = dict(into)
    for var in var_list or []:
        out[var.name] = evaluate_template(var.value, {**env, "vars": out})
    return out


def run(promotion_id: int) -> None:
    promotion = claim(promotion_id)
    if promotion is None:
        return
    work_dir = work_dir_for(promotion)
    try:
        with Heartbeat(promotion.id):
            phase, message = execute(promotion, work_dir)
    except actions.LostOwnership:
        log.warning("promotion %s was ended elsewhere while running; its run stops", promotion.name)
        return
    except Exception as exc:  # the promotion must end visibly with the cause, never hang Running
        log.exception("promotion %s crashed", promotion.name)
        phase, message = PromotionPhase.ERRORED, f"internal error: {exc.__class__.__name__}: {exc}"
    finally:
        # Every outcome shown (config, outputs, messages) is in the database; the clone is not
        # needed after the run, and keeping it would keep other projects' data on disk.
        shutil.rmtree(work_dir, ignore_errors=True)
    actions.do_finish(promotion, phase, message)


def execute(promotion: Promotion, work_dir: Path) -> tuple[str, str]:
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    steps = promotion.typed_spec.steps
    metadata: list[dict] = list(promotion.status.get("stepExecutionMetadata", []))
    state: dict = dict(promotion.status.get("state", {}))
    step_states: dict[str, str] = {}
    tolerated: set[str] = set()  # aliases of failed continueOnError steps
    freight_alias = (
        Freight.objects.filter(project=promotion.project, name=promotion.freight_name)
        .values_list("alias", flat=True)
        .first()
        or ""
    )
    env = build_env(promotion, freight_alias, step_states, tolerated)
    stage_vars = promotion.stage.typed_spec.vars
    try:
        template_vars = evaluate_vars(
            promotion.typed_spec.vars, env, evaluate_vars(stage_vars, env, {})
        )
    except ExpressionError as exc:
        return PromotionPhase.ERRORED, f"error evaluating promotion vars: {exc}"
    collection = promotion.status.get("freightCollection", {}).get("items", {})
    outcome = PromotionPhase.SUCCEEDED
    message = ""
    for index, step in enumerate(steps):
        alias = step.as_ or f"step-{index + 1}"
        promotion.refresh_from_db(fields=["annotations", "phase"])
        if promotion.phase != PromotionPhase.RUNNING:
            raise actions.LostOwnership(promotion.name)
        if actions.ABORT_ANNOTATION in promotion.annotations:
            actor = _abort_actor(promotion.annotations[actions.ABORT_ANNOTATION])
            return PromotionPhase.ABORTED, f"Promotion terminated by {actor}"
        started = timezone.now()
        entry = {"alias": alias, "startedAt": rfc3339(started), "status": "Running"}
        if step.continueOnError:
            entry["continueOnError"] = True
        metadata.append(entry)
        promotion.status = {
            **promotion.status,
            "currentStep": index,
            "stepExecutionMetadata": metadata,
            "state": state,
        }
        actions.do_step_progress(promotion)

        # Kargo's retry.errorThreshold: how many consecutive errors end the step (default 1).
        threshold = max(1, (step.retry and step.retry.errorThreshold) or 1)
        errors = 0
        while True:
            status, step_message, outputs, config_shown = run_step(
                promotion, step, alias, env, template_vars, state, work_dir, collection
            )
            if status != "Errored":
                break
            errors += 1
            entry["errorCount"] = errors
            if errors >= threshold:
                break
            entry["message"] = f"attempt {errors} of {threshold} errored: {step_message}"
            actions.do_step_progress(promotion)
            time.sleep(min(RETRY_DELAY * errors, 30))
        entry.update(status=status, finishedAt=rfc3339(timezone.now()))
        if step_message:
            entry["message"] = step_message
        if config_shown is not None:
            entry["config"] = redact_values(config_shown)
        if outputs:
            state[alias] = outputs
        step_states[alias] = status
        if step.continueOnError and status in FAILED_STEP_STATES:
            tolerated.add(alias)
        promotion.status = {**promotion.status, "stepExecutionMetadata": metadata, "state": state}
        actions.do_step_progress(promotion)
        if status in FAILED_STEP_STATES and not step.continueOnError:
            if outcome == PromotionPhase.SUCCEEDED or status == "Errored":
                outcome = PromotionPhase.ERRORED if status == "Errored" else PromotionPhase.FAILED
                message = f"step {alias} ({step.uses}) {status.lower()}: {step_message}"
    if outcome == PromotionPhase.SUCCEEDED:
        message = f"All {len(steps)} steps succeeded"
    return outcome, message


def run_step(
    promotion: Promotion,
    step: PromotionOnlyStep,
    alias: str,
    env: dict,
    template_vars: dict,
    state: dict,
    work_dir: Path,
    collection: dict,
):
    """Run one step. Returns (status, message, outputs, evaluated config for display)."""
    step_env = {**env, "outputs": state}
    try:
        step_vars = evaluate_vars(step.vars, {**step_env, "vars": template_vars}, template_vars)
        step_env["vars"] = step_vars
        condition = step.if_
        if condition:
            if not isinstance(evaluate_template(condition, step_env), bool):
                return "Errored", f"`if` of step {alias} must evaluate to true or false", None, None
            should_run = evaluate_template(condition, step_env)
        else:
            should_run = env["success"]()
        if not should_run:
            return "Skipped", "", None, None
        config = evaluate_template(step.config or {}, step_env)
    except ExpressionError as exc:
        return "Errored", str(exc), None, None
    try:
        for url in repo_urls_in(config):
            check_repo_url(url)
    except RepoNotAllowed as exc:
        return "Errored", str(exc), None, config
    try:
        impl = get_step(step.uses)
        valid = impl.validate(config or {})
        ctx = StepContext(
            work_dir=work_dir,
            project=promotion.project.name,
            stage=promotion.stage.name,
            promotion=promotion.name,
            actor=promotion.actor,
            freight=list(collection.values()),
            outputs=state,
        )
        result = impl().run(ctx, valid)
    except (StepError, UnknownStepError) as exc:
        return "Errored", str(exc), None, config
    except Exception as exc:  # a bug in a step must end the promotion visibly, not hang it
        log.exception("step %s of %s crashed", alias, promotion.name)
        return "Errored", f"internal error: {exc.__class__.__name__}: {exc}", None, config
    return result.status, result.message, result.outputs, config


def _abort_actor(raw: str) -> str:
    try:
        return json.loads(raw).get("actor", "unknown")
    except (ValueError, AttributeError):
        return "unknown"


def recover_lost(now=None) -> int:
    """Running promotions whose worker stopped (stale heartbeat) end Errored with the cause, so
    nothing stays Running forever. Returns how many were recovered."""
    now = now or timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT)
    lost = Promotion.objects.select_related("project", "stage").filter(
        phase=PromotionPhase.RUNNING, heartbeat_at__lt=cutoff
    )
    count = 0
    for promotion in lost:
        metadata = promotion.status.get("stepExecutionMetadata", [])
        running = next((m for m in metadata if m.get("status") == "Running"), None)
        where = f" while running step {running['alias']}" if running else ""
        if running:
            running.update(
                status="Errored", finishedAt=rfc3339(now), message="worker stopped during this step"
            )
            promotion.status = {**promotion.status, "stepExecutionMetadata": metadata}
        # do_finish re-checks under lock, so two reconcilers never finish one promotion twice.
        count += actions.do_finish(
            promotion,
            PromotionPhase.ERRORED,
            f"the worker running this promotion stopped{where} (last heartbeat "
            f"{rfc3339(promotion.heartbeat_at)}); promote again to retry",
        )
    return count
