"""Read paths of Stages and Promotions, tuned for the pages: the only place joins are decided."""

from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from freight.models import Freight, Warehouse
from kargo.conditions import get_condition
from kargo.durations import duration_seconds
from kargo.times import parse_rfc3339
from projects.models import Project

from .models import Promotion, PromotionPhase, Stage


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
    upstream: list[str] = field(default_factory=list)
    warehouses: list[str] = field(default_factory=list)


@dataclass
class PipelineData:
    project: Project
    stages: list[StageView]
    warehouses: list[Warehouse]
    freight: list[Freight]
    freight_total: int
    freight_by_name: dict[str, Freight]
    has_older: bool = False
    paged: bool = False  # showing an older page of the timeline, not the newest


def pipeline(project: Project, freight_limit: int = 60, before: str = "") -> PipelineData:
    """Everything the pipeline page shows, in a fixed number of queries whatever the size."""
    stages = list(Stage.objects.filter(project=project))
    warehouses = list(Warehouse.objects.filter(project=project))
    freight_qs = Freight.objects.filter(project=project)
    total = freight_qs.count()
    page_qs = freight_qs
    cursor = (
        freight_qs.filter(name=before).values("discovered_at", "name").first() if before else None
    )
    if cursor:
        # Keyset paging in the timeline's own order (-discovered_at, -name): no Freight is
        # skipped or shown twice when several share a timestamp.
        page_qs = freight_qs.filter(
            Q(discovered_at__lt=cursor["discovered_at"])
            | Q(discovered_at=cursor["discovered_at"], name__lt=cursor["name"])
        )
    freight_page = list(page_qs[: freight_limit + 1])
    has_older = len(freight_page) > freight_limit
    freight_page = freight_page[:freight_limit]
    # Freight a Stage currently holds may be older than the timeline page: fetch it too.
    wanted = {n for s in stages for n in current_freight_names(s.status)} - {
        f.name for f in freight_page
    }
    extra = list(Freight.objects.filter(project=project, name__in=wanted)) if wanted else []
    by_name = {f.name: f for f in freight_page + extra}
    open_promotions = Promotion.objects.filter(
        project=project, phase__in=[PromotionPhase.PENDING, PromotionPhase.RUNNING]
    ).only("id", "name", "stage_id", "phase", "freight_name", "status", "project_id")
    active: dict[int, Promotion] = {}
    pending: dict[int, int] = {}
    for promo in open_promotions:
        if promo.phase == PromotionPhase.RUNNING:
            active[promo.stage_id] = promo
        else:
            pending[promo.stage_id] = pending.get(promo.stage_id, 0) + 1
    views = [
        StageView(
            stage=s,
            phase=stage_phase(s),
            current=[by_name[n] for n in current_freight_names(s.status) if n in by_name],
            active=active.get(s.id),
            pending=pending.get(s.id, 0),
            upstream=s.upstream_names,
            warehouses=s.warehouse_names,
        )
        for s in stages
    ]
    return PipelineData(
        project, views, warehouses, freight_page, total, by_name, has_older, bool(cursor)
    )


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
