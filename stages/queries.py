"""Read paths of Stages and Promotions, tuned for the pages: the only place joins are decided."""

from dataclasses import dataclass, field

from django.utils import timezone

from freight.models import Freight
from kargo.conditions import get_condition
from kargo.durations import duration_seconds
from kargo.times import parse_rfc3339

from .models import Promotion, Stage


def availability(stage: Stage, freight: Freight, now=None) -> tuple[bool, str]:
    """Kargo's Stage.IsFreightAvailable, with the reason a person needs when it says no."""
    request = stage.typed_spec.request_for(freight.origin_name)
    if request is None:
        return (
            False,
            f"Stage {stage.name} does not request Freight from Warehouse {freight.origin_name}",
        )
    if stage.name in freight.status.get("approvedFor", {}):
        return True, "approved"
    sources = request.sources
    if sources.direct:
        return True, "direct from the Warehouse"
    upstreams = sources.stages or []
    if not upstreams:
        return False, f"Stage {stage.name} lists no source for Warehouse {freight.origin_name}"
    soak = duration_seconds(sources.requiredSoakTime)
    now = now or timezone.now()
    verified = freight.status.get("verifiedIn", {})
    ok = [u for u in upstreams if u in verified and soaked_for(freight, u, now) >= soak]
    if sources.availabilityStrategy == "All":
        if len(ok) == len(upstreams):
            return True, "verified in every upstream Stage"
        missing = ", ".join(u for u in upstreams if u not in ok)
        return False, f"not yet verified{' and soaked' if soak else ''} in {missing}"
    if ok:
        return True, f"verified in {ok[0]}"
    return False, f"not yet verified{' and soaked' if soak else ''} in {' or '.join(upstreams)}"


def soaked_for(freight: Freight, stage_name: str, now) -> float:
    """Kargo's GetLongestSoak: the longest continuous stay in the Stage, including the current one."""
    info = freight.status.get("verifiedIn", {}).get(stage_name, {})
    longest = duration_seconds(info.get("longestSoak"))
    current = freight.status.get("currentlyIn", {}).get(stage_name)
    if current and current.get("since"):
        longest = max(longest, (now - parse_rfc3339(current["since"])).total_seconds())
    return longest


def newest_available(stage: Stage, origin_name: str) -> Freight | None:
    """Kargo's promote-by-origin: the newest Freight of the Warehouse the Stage may take now."""
    now = timezone.now()
    candidates = Freight.objects.filter(project_id=stage.project_id, origin_name=origin_name)
    return next(
        (f for f in candidates.iterator(chunk_size=50) if availability(stage, f, now)[0]), None
    )


def freight_by_key(project, key: str) -> Freight | None:
    """Freight by name, else by alias: users know Freight by either."""
    return (
        Freight.objects.filter(project=project, name=key).first()
        or Freight.objects.filter(project=project, alias=key).first()
    )


def stage_phase(stage: Stage) -> str:
    """The phase Kargo's UI derives from conditions (getStagePhase)."""
    conditions = stage.status.get("conditions", [])
    promoting = get_condition(conditions, "Promoting")
    if promoting and promoting["status"] == "True":
        return "Promoting"
    verified = get_condition(conditions, "Verified")
    if verified and verified["status"] == "Unknown":
        return "Verifying"
    ready = get_condition(conditions, "Ready")
    if ready and ready["status"] == "False":
        return "Failed"
    if ready and ready["status"] == "True":
        return "Ready"
    return "Unknown"


def phase_reason(stage: Stage) -> str:
    """Why the Stage shows its phase, for the card's hover: the verification's message when it
    verifies, else the Ready condition's."""
    conditions = stage.status.get("conditions", [])
    for kind in ("Verified", "Ready"):
        found = get_condition(conditions, kind)
        if found and found.get("message"):
            return f"{found['reason']}: {found['message']}"
    return ""


def latest_verification_of(status: dict) -> dict | None:
    """The newest VerificationInfo of the current Freight in a Stage's status."""
    history = status.get("freightHistory") or []
    return ((history[0].get("verificationHistory") or [None])[0]) if history else None


def current_freight_names(status: dict) -> list[str]:
    history = status.get("freightHistory") or []
    if not history:
        return []
    return [item["name"] for item in history[0].get("items", {}).values()]


@dataclass
class StageView:
    stage: Stage
    phase: str
    current: list[Freight]
    active: Promotion | None
    pending: int
    reason: str = ""
    upstream: list[str] = field(default_factory=list)
    warehouses: list[str] = field(default_factory=list)


def recent_promotions(stage: Stage, limit: int = 20) -> list[Promotion]:
    return list(Promotion.objects.filter(stage=stage).order_by("-name").defer("spec")[:limit])


def promotable_freight(stage: Stage, limit: int = 30) -> list[tuple[Freight, bool, str]]:
    """The newest Freight of the Stage's origins with whether each may be promoted now and why."""
    origins = [r.origin.name for r in stage.typed_spec.requestedFreight]
    now = timezone.now()
    return [
        (f, *availability(stage, f, now))
        for f in Freight.objects.filter(project=stage.project_id, origin_name__in=origins)[:limit]
    ]
