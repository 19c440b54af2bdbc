"""Auto-promotion's rules, as reads: which Stages a project's ProjectConfig lets auto-promote
(Kargo's pkg/api/auto_promotion.go), which Freight each would take (its candidate per origin),
and what holds it back. Nothing here writes: stages.actions.do_auto_promote acts on these answers,
and do_promote asks promotion_intent() whether a person's promotion holds or resumes auto-promotion.

The rules, after Kargo's Stage controller (regular_stages.go autoPromoteFreight):
- A Stage auto-promotes when the first of its project's `promotionPolicies` that selects it says
  `autoPromotionEnabled`. A policy selects by `stage` (the exact name) or `stageSelector`: a name
  (exact, `glob:` or `regex:` pattern) and/or Kubernetes label selectors over the Stage's labels.
- Per requested origin one candidate: the newest Freight available to the Stage (NewestFreight,
  the default), or the Freight now in its one upstream Stage if available (MatchUpstream).
- No promotion when the candidate is already current, when one of it to the Stage is open
  (Pending or Running), when the last one of it to the Stage did not succeed (a failed Freight is
  never retried by itself), or when the origin is held.
- Holds: a person's promotion of anything but the candidate holds the origin; of the candidate,
  releases it. The intent is stamped on the Promotion when it is created and becomes the Stage's
  durable `status.autoPromotionHolds` when it ends (unless it was aborted); while it is open it
  already counts (effective_holds). Auto-promotions carry no intent; disabling clears holds.
"""

import logging
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone
from wcmatch import fnmatch

from freight.models import Freight
from kargo.regex import RegexError, compile_regex
from kargo.specs import ProjectConfigSpec, PromotionPolicy
from kargo.times import rfc3339
from projects.models import ProjectConfig

from .models import Promotion, PromotionPhase, Stage
from .queries import availability, newest_available

log = logging.getLogger(__name__)

# Who auto-promotions are by: Kargo's controller actor format, `controller:<name>`.
CONTROLLER_ACTOR = "controller:kargo-ui"
HOLD_ANNOTATION = "kargo.akuity.io/auto-promotion-hold"
RESUME_ANNOTATION = "kargo.akuity.io/auto-promotion-resume"
OPEN_PHASES = (PromotionPhase.PENDING, PromotionPhase.RUNNING)

# doublestar, as Kargo's `glob:` names: "*" and "?" (a Stage name has no "/"), classes, {a,b}.
GLOB_FLAGS = fnmatch.DOTMATCH | fnmatch.CASE | fnmatch.BRACE
# More {a,b} expansions than a sensible selector needs; a pattern needing more is refused.
GLOB_EXPANSION_LIMIT = 1000


class PolicyError(ValueError):
    """A promotion policy that cannot be evaluated (a bad pattern or label selector)."""


# ---------------------------------------------------------------------------- policies


def name_matches(pattern: str, name: str) -> bool:
    """Kargo's ParseNamePattern: `glob:` a doublestar glob, `regex:`/`regexp:` an unanchored Go
    (RE2) regular expression, anything else the exact name."""
    if pattern.startswith("glob:"):
        try:
            return fnmatch.fnmatch(name, pattern[5:], flags=GLOB_FLAGS, limit=GLOB_EXPANSION_LIMIT)
        except Exception as exc:  # wcmatch/bracex: too many expansions, a bad pattern
            raise PolicyError(f"invalid glob pattern {pattern!r}: {exc}") from None
    if pattern.startswith(("regex:", "regexp:")):
        try:
            return compile_regex(pattern.split(":", 1)[1]).search(name) is not None
        except RegexError as exc:
            raise PolicyError(str(exc)) from None
    return pattern == name


def labels_match(match_labels: dict | None, expressions: list | None, labels: dict) -> bool:
    """Kubernetes' LabelSelectorAsSelector(...).Matches(labels): every matchLabels pair and every
    requirement holds; a selector with neither matches everything."""
    for key, value in (match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in expressions or []:
        values = req.values or []
        if req.operator in ("In", "NotIn"):
            if not values:
                raise PolicyError(f"label selector {req.key!r} {req.operator}: needs values")
            inside = req.key in labels and labels[req.key] in values
            if inside != (req.operator == "In"):
                return False
        elif req.operator in ("Exists", "DoesNotExist"):
            if values:
                raise PolicyError(f"label selector {req.key!r} {req.operator}: takes no values")
            if (req.key in labels) != (req.operator == "Exists"):
                return False
        else:
            raise PolicyError(f"label selector {req.key!r}: unknown operator {req.operator!r}")
    return True


def policy_selects(policy: PromotionPolicy, name: str, labels: dict) -> bool:
    selector = policy.stageSelector
    if selector is None:
        # The deprecated `stage` field: an exact name.
        return policy.stage == name
    if selector.name and not name_matches(selector.name, name):
        return False
    return labels_match(selector.matchLabels, selector.matchExpressions, labels or {})


def matching_policy(
    policies: list[PromotionPolicy], name: str, labels: dict
) -> PromotionPolicy | None:
    """Kargo's findMatchingPromotionPolicy: the first policy that selects the Stage, even when a
    later one also does. Raises PolicyError for a policy it cannot evaluate on the way."""
    return next((p for p in policies if policy_selects(p, name, labels)), None)


def enables(policies: list[PromotionPolicy], name: str, labels: dict) -> bool:
    policy = matching_policy(policies, name, labels)
    return bool(policy and policy.autoPromotionEnabled)


def policies_in(spec: dict | None) -> list[PromotionPolicy]:
    """The promotion policies of a stored ProjectConfig spec (validated when it was applied)."""
    if not spec or not spec.get("promotionPolicies"):
        return []
    return ProjectConfigSpec.model_validate(spec).promotionPolicies or []


def policies_of(project_id: int) -> list[PromotionPolicy]:
    """The project's promotion policies, read now (one query)."""
    spec = ProjectConfig.objects.filter(project_id=project_id).values_list("spec", flat=True)
    return policies_in(spec.first())


def enabled_now(stage: Stage) -> bool:
    """Whether the project's ProjectConfig, read now, lets the Stage auto-promote. A policy that
    cannot be evaluated enables nothing (it is logged; the reconcile logs it too)."""
    try:
        return enables(policies_of(stage.project_id), stage.name, stage.labels)
    except PolicyError as exc:
        log.warning("promotion policies of project %s: %s", stage.project_id, exc)
        return False


def projects_to_reconcile() -> list[int]:
    """The projects auto-promotion has work in (one query): those whose ProjectConfig has
    promotion policies, and those with a Stage still marked enabled or holding holds (its policy
    went away, and its status must say so)."""
    configured = ProjectConfig.objects.filter(spec__has_key="promotionPolicies")
    marked = Stage.objects.filter(
        Q(status__autoPromotionEnabled=True) | Q(status__has_key="autoPromotionHolds")
    )
    ids = (
        configured.order_by()
        .values_list("project_id", flat=True)
        .union(marked.order_by().values_list("project_id", flat=True))
    )
    return sorted(ids)


# ---------------------------------------------------------------------------- candidates


def origin_key(origin_name: str) -> str:
    """Kargo's FreightOrigin.String(): the key of holds and freightHistory items."""
    return f"Warehouse/{origin_name}"


def origins(stage: Stage) -> list[str]:
    """The Warehouses the Stage requests Freight from (directly or through upstream Stages)."""
    return [r.origin.name for r in stage.typed_spec.requestedFreight]


def current_in(stage_status: dict, origin_name: str) -> str | None:
    """The name of the Stage's current Freight of the origin, if any."""
    history = stage_status.get("freightHistory") or []
    if not history:
        return None
    item = (history[0].get("items") or {}).get(origin_key(origin_name))
    return item["name"] if item else None


def selection_policy(stage: Stage, origin_name: str) -> str:
    request = stage.typed_spec.request_for(origin_name)
    options = request.sources.autoPromotionOptions if request else None
    return (options.selectionPolicy if options else None) or "NewestFreight"


class FreightScan:
    """One origin's Freight, newest first (Kargo's candidate order: discoveredAt, then name),
    read a page at a time only as far as anyone iterates, and kept: in one auto-promotion pass
    every Stage of the origin walks the same rows, so the pass reads an origin's newest Freight
    once, not once per Stage."""

    PAGE = 50

    def __init__(self, project_id: int, origin_name: str):
        self.query = Freight.objects.filter(project_id=project_id, origin_name=origin_name)
        self.rows: list[Freight] = []
        self.exhausted = False

    def __iter__(self):
        i = 0
        while i < len(self.rows) or self._read_more():
            yield self.rows[i]
            i += 1

    def _read_more(self) -> bool:
        if self.exhausted:
            return False
        query = self.query
        if self.rows:
            last = self.rows[-1]  # keyset paging along the Freight's ordering and index
            query = query.filter(
                Q(discovered_at__lt=last.discovered_at)
                | Q(discovered_at=last.discovered_at, name__lt=last.name)
            )
        page = list(query[: self.PAGE])
        self.exhausted = len(page) < self.PAGE
        self.rows += page
        return bool(page)


def candidate(
    stage: Stage,
    origin_name: str,
    stages_by_name: dict[str, Stage] | None = None,
    scans: dict[str, FreightScan] | None = None,
) -> Freight | None:
    """The Freight auto-promotion would take into the Stage from the origin (Kargo's
    SelectAutoPromotionCandidates): the newest available one (NewestFreight), or the one now in
    the single upstream Stage, when it is available (MatchUpstream). A pass over a project
    passes the project's Stages (`stages_by_name`, for the upstream) and its FreightScans
    (`scans`, by origin, filled as needed), so that its Stages share their reads."""
    request = stage.typed_spec.request_for(origin_name)
    if request is None:
        return None
    if selection_policy(stage, origin_name) != "MatchUpstream":
        if scans is None:
            return newest_available(stage, origin_name)
        scan = scans.setdefault(origin_name, FreightScan(stage.project_id, origin_name))
        now = timezone.now()
        return next((f for f in scan if availability(stage, f, now)[0]), None)
    upstreams = request.sources.stages or []
    if request.sources.direct or len(upstreams) != 1:
        # Kargo's Stage webhook refuses this; a Stage stored before that check has no candidate.
        return None
    upstream = (stages_by_name or {}).get(upstreams[0])
    if upstream is None:
        upstream = (
            Stage.objects.filter(project_id=stage.project_id, name=upstreams[0])
            .only("status")
            .first()
        )
    name = current_in(upstream.status, origin_name) if upstream else None
    if name is None:
        return None
    freight = Freight.objects.filter(project_id=stage.project_id, name=name).first()
    if freight is None or not availability(stage, freight)[0]:
        return None
    return freight


def promotion_intent(stage: Stage, freight: Freight, actor: str) -> dict[str, str]:
    """The hold or resume annotation of a new promotion of the Freight into the Stage (Kargo's
    promotion webhook, syncHoldAnnotations): none for auto-promotions (and other controllers) or
    while the Stage does not auto-promote; else resume when the Freight is its origin's
    candidate, hold when it is not (or there is none)."""
    if actor.startswith("controller:") or not enabled_now(stage):
        return {}
    key = origin_key(freight.origin_name)
    pick = candidate(stage, freight.origin_name)
    if pick is not None and pick.name == freight.name:
        return {RESUME_ANNOTATION: key}
    return {HOLD_ANNOTATION: key}


# ---------------------------------------------------------------------------- holds


def new_hold(promotion: Promotion) -> dict:
    """Kargo's AutoPromotionHold, from the promotion that establishes it."""
    origin = (promotion.status.get("freight") or {}).get("origin") or {
        "kind": "Warehouse",
        "name": promotion.annotations[HOLD_ANNOTATION].partition("/")[2],
    }
    hold = {
        "freightName": promotion.freight_name,
        "origin": origin,
        "promotionName": promotion.name,
    }
    if promotion.actor:
        hold["actor"] = promotion.actor
    if promotion.created_at:
        hold["createdAt"] = rfc3339(promotion.created_at)
    return hold


def held_with(holds: dict, promotion: Promotion, requested: set[str]) -> dict:
    """`holds` after the ended promotion's intent (Kargo's syncPromotions replay): a hold for
    its origin, or none. Holds of origins the Stage no longer requests are dropped."""
    holds = {k: v for k, v in holds.items() if k in requested}
    key = promotion.annotations.get(HOLD_ANNOTATION)
    if key and key in requested:
        holds[key] = new_hold(promotion)
    elif promotion.annotations.get(RESUME_ANNOTATION):
        holds.pop(promotion.annotations[RESUME_ANNOTATION], None)
    return holds


def effective_holds(held: dict, origins: list[str], open_promotions: list[Promotion]) -> dict:
    """The holds in force now (Kargo's computeEffectiveAutoPromotionHolds): the durable ones
    (`held`), overlaid per requested origin with the newest intent among the Stage's open
    promotions (in creation order), which already counts: a person who promoted older Freight
    is not overtaken while that promotion runs."""
    holds = dict(held)
    for origin in origins:
        key = origin_key(origin)
        newest = None
        for promotion in open_promotions:
            intent = promotion.annotations
            if key in (intent.get(HOLD_ANNOTATION), intent.get(RESUME_ANNOTATION)):
                newest = promotion
        if newest is None:
            continue
        if newest.annotations.get(HOLD_ANNOTATION) == key:
            holds[key] = new_hold(newest)
        else:
            holds.pop(key, None)
    return holds


def open_promotions(stage_ids: list[int]) -> dict[int, list[Promotion]]:
    """The open (Pending, Running) promotions of the Stages, in creation order (one query)."""
    by_stage: dict[int, list[Promotion]] = {i: [] for i in stage_ids}
    rows = (
        Promotion.objects.filter(stage_id__in=stage_ids, phase__in=OPEN_PHASES)
        .order_by("created_at", "id")
        .only("stage_id", "name", "freight_name", "annotations", "actor", "created_at", "status")
    )
    for promotion in rows:
        by_stage[promotion.stage_id].append(promotion)
    return by_stage


def last_attempt_failed(stage: Stage, freight_name: str) -> bool:
    """Whether the newest ended promotion of the Freight to the Stage did not succeed: Kargo
    never retries it by itself (a person promotes it again, or newer Freight comes)."""
    last = (
        Promotion.objects.filter(stage=stage, freight_name=freight_name)
        .exclude(phase__in=OPEN_PHASES)
        .order_by("-created_at", "-id")
        .values_list("phase", flat=True)
        .first()
    )
    return last is not None and last != PromotionPhase.SUCCEEDED


# ---------------------------------------------------------------------------- for the drawer


@dataclass
class AutoPromotionState:
    """What the Stage drawer shows of auto-promotion: whether it is on (status, as the last
    reconcile or do_set_auto_promotion left it) and the holds in force, by origin key, each
    Kargo's AutoPromotionHold (freightName, origin, promotionName, actor, createdAt)."""

    enabled: bool
    holds: dict[str, dict] = field(default_factory=dict)


def auto_promotion_state(stage: Stage) -> AutoPromotionState:
    """For the Stage drawer: no query while auto-promotion is off, one while it is on."""
    if not stage.status.get("autoPromotionEnabled"):
        return AutoPromotionState(enabled=False)
    held = stage.status.get("autoPromotionHolds") or {}
    opened = open_promotions([stage.id])[stage.id]
    return AutoPromotionState(enabled=True, holds=effective_holds(held, origins(stage), opened))


def auto_promotion_answer(stage: Stage) -> dict:
    """The JSON API's and the CLIs' view of a Stage's auto-promotion (kargo_ui.cli_verbs prints
    it): whether it is on, and the holds in force by origin."""
    state = auto_promotion_state(stage)
    return {
        "stage": stage.name,
        "autoPromotionEnabled": state.enabled,
        "autoPromotionHolds": state.holds,
    }
