"""The promotion runner: executes a Running promotion's steps in order, recording each step's
status, timing, evaluated config and outputs so a page can show them while they happen."""

import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from freight.models import Freight
from kargo.durations import format_duration
from kargo.expressions import ExpressionError, evaluate_template
from kargo.expressions.values import type_name
from kargo.redaction import hide_paths, redact_values
from kargo.specs import ExpressionVariable, PromotionOnlyStep
from kargo.times import rfc3339, rfc3339_nano
from projects.credentials import expression_functions, mask
from projects.queue import enqueue_on_commit
from projects.repos import RepoNotAllowed, check_repo_url, repo_urls_in

from . import actions
from .models import Promotion, PromotionPhase
from .steps import UnknownStepError, get_step
from .steps.base import StepContext, StepError
from .steps.set_metadata import metadata_function

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0  # at most; more often when the timeout is short (heartbeat_every)
RETRY_DELAY = 1.0  # seconds before a retried step runs again, growing with each error
FAILED_STEP_STATES = {"Failed", "Errored"}
TERMINAL_STEP_STATES = {"Succeeded", "Failed", "Errored", "Skipped", "Aborted"}


def work_dir_for(promotion: Promotion) -> Path:
    """The promotion's directory; each run (first, or resumed) works in its own `run-<n>` in it."""
    return settings.DATA_DIR / "work" / promotion.project.name / promotion.name


def heartbeat_every() -> float:
    # Three beats per timeout, so one slow or missed beat never gets a live run taken for dead.
    return min(HEARTBEAT_EVERY, settings.PROMOTION_HEARTBEAT_TIMEOUT / 3)


def max_resumes() -> int:
    """How many times a promotion whose worker stopped is resumed before it ends Errored."""
    return settings.PROMOTION_MAX_RESUMES


class Heartbeat:
    """Touches the promotion's heartbeat while a step runs, so the reconciler can tell a slow step
    from a dead worker. Beats only while the run is still this worker's (`claimed_by`)."""

    def __init__(self, promotion_id: int, claimed_by: str):
        self.promotion_id = promotion_id
        self.claimed_by = claimed_by
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"heartbeat-{promotion_id}"
        )

    def _run(self) -> None:
        while not self.stop.wait(heartbeat_every()):
            try:
                Promotion.objects.filter(
                    id=self.promotion_id,
                    phase=PromotionPhase.RUNNING,
                    claimed_by=self.claimed_by,
                ).update(heartbeat_at=timezone.now())
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


def start_next(stage_id: int) -> None:
    """The start task's work: claim the Stage's next promotion, if one may start now, and run it
    here. Claim and run are one task, so a promotion shows Running only once a worker holds it."""
    promotion = actions.do_start_next(stage_id, claimed_by=actions.claim_token())
    if promotion is not None:
        run(promotion.id, promotion.claimed_by)


def resume(promotion_id: int) -> None:
    """The resume task's work (recover_lost sends it): take over a Running promotion whose worker
    stopped and run it here, or end it Errored once its resumes ran out (actions.do_recover)."""
    token = actions.claim_token()
    cutoff = timezone.now() - timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT)
    if actions.do_recover(promotion_id, cutoff, max_resumes(), claimed_by=token) == "resumed":
        run(promotion_id, token)


def claimed(promotion_id: int, token: str) -> Promotion | None:
    """The promotion, if it is still Running under the claim `token`."""
    return (
        Promotion.objects.select_related("project", "stage")
        .filter(id=promotion_id, phase=PromotionPhase.RUNNING, claimed_by=token)
        .first()
    )


def json_value(value, where: str):
    """An evaluated config, var or output as JSON. Expressions can yield values JSON has no form
    for: times and durations (now(), duration('1h')) become the text Kargo's templates give them
    (kargo.expressions: RFC 3339 with nanoseconds, Go's duration text); anything else (a function,
    NaN) is an ExpressionError naming where it is."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"{where} is {value}, which is not a JSON number")
        return value
    if isinstance(value, datetime):
        return rfc3339_nano(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ExpressionError(f"{where} evaluated to a {type_name(value)}, which has no JSON form")


def build_env(
    promotion: Promotion,
    freight_alias: str,
    step_states: dict[str, str],
    tolerated: set[str],
    revealed: set[str] | None = None,
) -> dict:
    """The expression environment of Kargo's promotion steps. `status(alias)` gives a step's real
    status; success()/failure() ignore failures of continueOnError steps (`tolerated`).
    secret()/sharedSecret()/configMap()/sharedConfigMap() read the project's stored ones
    (projects.credentials); every secret value they hand out goes into `revealed`, for masking
    what is shown of a step."""
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
        "freightMetadata": metadata_function("Freight", promotion.project_id),
        "stageMetadata": metadata_function("Stage", promotion.project_id),
        **expression_functions(promotion.project_id, revealed if revealed is not None else set()),
    }


def evaluate_vars(var_list: list[ExpressionVariable] | None, env: dict, into: dict) -> dict:
    """Vars are evaluated in order, each seeing the ones before it."""
    out = dict(into)
    for var in var_list or []:
        value = evaluate_template(var.value, {**env, "vars": out})
        out[var.name] = json_value(value, f"vars.{var.name}")
    return out


def run(promotion_id: int, token: str) -> None:
    """Run a promotion this worker has claimed (`token`) to its end. Every write of the run checks
    the claim, so a run taken over meanwhile (thought dead, then resumed elsewhere) stops."""
    promotion = claimed(promotion_id, token)
    if promotion is None:  # ended (aborted) or taken over since the claim
        return
    resumed = f" (resume {promotion.resumes})" if promotion.resumes else ""
    # Which worker ran what (the chaos test and bench/bench_queue.py read these lines).
    log.info("worker %s runs promotion %s%s", token, promotion.name, resumed)
    base = work_dir_for(promotion)
    work_dir = base / f"run-{promotion.resumes}"
    try:
        # What earlier runs of this promotion left (a worker that died has no `finally`) is stale.
        for stale in base.glob("run-*"):
            if stale != work_dir:
                shutil.rmtree(stale, ignore_errors=True)
        with Heartbeat(promotion.id, token):
            phase, message = execute(promotion, work_dir, token)
    except actions.LostOwnership:
        log.warning("promotion %s is no longer this worker's run; it stops", promotion.name)
        return
    except Exception as exc:  # the promotion must end visibly with the cause, never hang Running
        log.exception("promotion %s crashed", promotion.name)
        phase, message = PromotionPhase.ERRORED, f"internal error: {exc.__class__.__name__}: {exc}"
    finally:
        # Every outcome shown (config, outputs, messages) is in the database; the clone is not
        # needed after the run, and keeping it would keep other projects' data on disk.
        shutil.rmtree(work_dir, ignore_errors=True)
        try:
            base.rmdir()
        except OSError:
            pass  # gone already, or another run's directory is in it
    try:
        actions.do_finish(promotion, phase, message, claimed_by=token)
    except Exception as exc:
        # The status in hand could not be stored (a step record the database refuses): finish
        # with the last stored status instead, so the promotion never stays Running.
        log.exception("finishing promotion %s failed", promotion.name)
        promotion.refresh_from_db(fields=["status"])
        actions.do_finish(
            promotion,
            PromotionPhase.ERRORED,
            f"internal error: {exc.__class__.__name__}: {exc}",
            claimed_by=token,
        )


def judge(outcome: str, message: str, step, alias: str, status: str, step_message: str):
    """Fold one step's status into the promotion's (outcome, message), as Kargo does: a failed step
    fails the promotion unless it may (continueOnError), and an error outranks a failure."""
    if status in FAILED_STEP_STATES and not step.continueOnError:
        if outcome == PromotionPhase.SUCCEEDED or status == "Errored":
            outcome = PromotionPhase.ERRORED if status == "Errored" else PromotionPhase.FAILED
            message = f"step {alias} ({step.uses}) {status.lower()}: {step_message}"
    return outcome, message


def succeeded_message(promotion: Promotion, steps: list) -> str:
    message = f"All {len(steps)} steps succeeded"
    if promotion.resumes:
        times = "once" if promotion.resumes == 1 else f"{promotion.resumes} times"
        message += f" (resumed {times} after the worker stopped)"
    return message


def execute(promotion: Promotion, work_dir: Path, claimed_by: str) -> tuple[str, str]:
    """Run the promotion's steps. A resumed run (promotion.resumes > 0: the worker of an earlier run
    stopped) re-runs them from the first, in a fresh work dir, keeping the earlier outputs (state)
    as Kargo does when its work dir is gone: the work dir of the run that stopped is gone or
    stale, and every later step needs what the earlier ones built there (the clone, the rendered
    files, the commit), while the only lasting effects (a pushed branch) are recognised by the
    steps themselves (git-clone finds the branch it created, git-commit has nothing to commit
    when the change is already on the branch it cloned, git-push does not push what has landed).
    Each step's stepExecutionMetadata entry is reused (by alias, as Kargo does) and says that it
    was resumed. When every step had finished before the worker stopped, nothing is re-run: the
    recorded statuses are the outcome."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    steps = promotion.typed_spec.steps
    metadata: list[dict] = [dict(m) for m in promotion.status.get("stepExecutionMetadata", [])]
    state: dict = dict(promotion.status.get("state", {}))
    aliases = [step.as_ or f"step-{index + 1}" for index, step in enumerate(steps)]
    note = promotion.message if promotion.resumes else ""
    if (
        promotion.resumes
        and [m.get("alias") for m in metadata] == aliases
        and all(m.get("status") in TERMINAL_STEP_STATES for m in metadata)
    ):
        outcome, message = PromotionPhase.SUCCEEDED, ""
        for step, alias, entry in zip(steps, aliases, metadata, strict=True):
            outcome, message = judge(
                outcome, message, step, alias, entry["status"], entry.get("message", "")
            )
        return outcome, message or succeeded_message(promotion, steps)
    step_states: dict[str, str] = {}
    tolerated: set[str] = set()  # aliases of failed continueOnError steps
    freight_alias = (
        Freight.objects.filter(project=promotion.project, name=promotion.freight_name)
        .values_list("alias", flat=True)
        .first()
        or ""
    )
    revealed: set[str] = set()  # secret values expressions read: masked wherever a step is shown
    env = build_env(promotion, freight_alias, step_states, tolerated, revealed)
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
    for index, (step, alias) in enumerate(zip(steps, aliases, strict=True)):
        current = (
            Promotion.objects.filter(id=promotion.id)
            .values("phase", "claimed_by", "annotations")
            .first()
        )
        if (
            current is None
            or current["phase"] != PromotionPhase.RUNNING
            or current["claimed_by"] != claimed_by
        ):
            raise actions.LostOwnership(promotion.name)
        promotion.annotations = current["annotations"]
        if actions.ABORT_ANNOTATION in promotion.annotations:
            actor = _abort_actor(promotion.annotations[actions.ABORT_ANNOTATION])
            return PromotionPhase.ABORTED, f"Promotion terminated by {actor}"
        started = timezone.now()
        entry = {"alias": alias, "startedAt": rfc3339(started), "status": "Running"}
        if note:
            entry["message"] = note
        if step.continueOnError:
            entry["continueOnError"] = True
        if index < len(metadata):
            metadata[index] = entry  # this step's entry from the run that stopped
        else:
            metadata.append(entry)
        promotion.status = {
            **promotion.status,
            "currentStep": index,
            "stepExecutionMetadata": metadata,
            "state": state,
        }
        # The step started; the one before ended a moment ago (only the abort check above ran
        # since), and both are recorded in this one write.
        actions.do_step_progress(promotion, claimed_by)

        # Kargo's retry.errorThreshold: how many consecutive errors end the step (default 1).
        threshold = max(1, (step.retry and step.retry.errorThreshold) or 1)
        errors = 0
        while True:
            status, step_message, outputs, config_shown = run_step(
                promotion, step, alias, env, template_vars, state, work_dir, collection
            )
            # Users see paths relative to the work directory, never the server's own layout.
            step_message = mask(
                hide_paths(step_message, (work_dir, "."), (settings.DATA_DIR, "$KARGO_DATA_DIR")),
                revealed,
            )
            if status != "Errored":
                break
            errors += 1
            entry["errorCount"] = errors
            if errors >= threshold:
                break
            entry["message"] = _with_note(
                note, f"attempt {errors} of {threshold} errored: {step_message}"
            )
            actions.do_step_progress(promotion, claimed_by)
            time.sleep(min(RETRY_DELAY * errors, 30))
        entry.update(status=status, finishedAt=rfc3339(timezone.now()))
        if step_message or note:
            entry["message"] = _with_note(note, step_message)
        if config_shown is not None:
            entry["config"] = mask(redact_values(config_shown), revealed)
        if outputs:
            state[alias] = outputs
        step_states[alias] = status
        if step.continueOnError and status in FAILED_STEP_STATES:
            tolerated.add(alias)
        promotion.status = {**promotion.status, "stepExecutionMetadata": metadata, "state": state}
        outcome, message = judge(outcome, message, step, alias, status, step_message)
    # The last step's end (each earlier one's was written with the next one's start). Written
    # before the finish: a worker that dies in between leaves every step's outcome recorded, and
    # the promotion resumes without running a step again.
    actions.do_step_progress(promotion, claimed_by)
    if outcome == PromotionPhase.SUCCEEDED:
        message = succeeded_message(promotion, steps)
    return outcome, message


def _with_note(note: str, message: str) -> str:
    return "; ".join(part for part in (note, message) if part)


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
            should_run = evaluate_template(condition, step_env)
            if not isinstance(should_run, bool):
                return "Errored", f"`if` of step {alias} must evaluate to true or false", None, None
        else:
            should_run = env["success"]()
        if not should_run:
            return "Skipped", "", None, None
        config = json_value(evaluate_template(step.config or {}, step_env), "config")
    except ExpressionError as exc:
        return "Errored", str(exc), None, None
    except Exception as exc:  # an evaluator bug ends the step at once, with the cause
        log.exception("evaluating step %s of %s crashed", alias, promotion.name)
        return "Errored", f"internal error: {exc.__class__.__name__}: {exc}", None, None
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
            project_id=promotion.project_id,
        )
        result = impl().run(ctx, valid)
        outputs = json_value(result.outputs, "outputs")
    except (StepError, UnknownStepError) as exc:
        return "Errored", str(exc), None, config
    except Exception as exc:  # a bug in a step must end the promotion visibly, not hang it
        log.exception("step %s of %s crashed", alias, promotion.name)
        return "Errored", f"internal error: {exc.__class__.__name__}: {exc}", None, config
    return result.status, result.message, outputs, config


def _abort_actor(raw: str) -> str:
    try:
        return json.loads(raw).get("actor", "unknown")
    except (ValueError, AttributeError):
        return "unknown"


def recover_lost(now=None) -> int:
    """Running promotions whose worker stopped (no heartbeat for the timeout) get a resume task:
    the worker that takes it resumes the run, or, after max_resumes() resumes, ends it Errored with
    the cause (resume, actions.do_recover), so nothing stays Running forever. A resume task that is
    lost, or sent twice, is harmless: the next sweep sends another while the run is still stale,
    and of two only the first takes it over. Returns how many were found."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PROMOTION_HEARTBEAT_TIMEOUT)
    lost = list(actions.stale_runs(cutoff).values_list("id", flat=True))
    for promotion_id in lost:
        enqueue_on_commit("stages.tasks.resume_promotion", promotion_id)
    return len(lost)
