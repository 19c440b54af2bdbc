"""Context builders shared by the page views and the websocket consumer, so a pushed fragment is
rendered by exactly the code that rendered the page."""

from functools import lru_cache

from django.db.models import Q
from django.template.loader import render_to_string

from freight.models import Freight
from projects.access import can_promote
from projects.models import Event, Project
from projects.web import PAGE

from . import queries
from .graph import layout, pipeline_order
from .models import Promotion, Stage

STAGE_COLORS = [
    "#4f7cff",
    "#12a150",
    "#d97706",
    "#c026d3",
    "#0891b2",
    "#dc2626",
    "#65a30d",
    "#7c3aed",
]


def page_context(project: Project, role: str, before: str = "") -> dict:
    data = queries.pipeline(project, before=before)
    graph = layout(data.warehouses, data.stages)
    ordered = pipeline_order([v.stage for v in data.stages])
    colors = {stage.name: STAGE_COLORS[i % len(STAGE_COLORS)] for i, stage in enumerate(ordered)}
    holders: dict[str, list[str]] = {}
    views = {v.stage.name: v for v in data.stages}
    for stage in ordered:
        for f in views[stage.name].current:
            holders.setdefault(f.name, []).append(stage.name)
    timeline = [(f, [(s, colors[s]) for s in holders.get(f.name, [])]) for f in data.freight]
    return {
        "project": project,
        "role": role,
        "can_promote": can_promote(role),
        "graph": graph,
        "colors": colors,
        "timeline": timeline,
        "freight_total": data.freight_total,
        "freight_more": data.has_older,
        "freight_paged": data.paged,
        "oldest": data.freight[-1].name if data.freight else "",
        "events": list(Event.objects.filter(project=project)[:12]),
    }


def stage_context(project: Project, stage: Stage, role: str) -> dict:
    promotions = queries.recent_promotions(stage)
    names = queries.current_freight_names(stage.status)
    current = list(Freight.objects.filter(project=project, name__in=names)) if names else []
    return {
        "stage": stage,
        "stage_phase": queries.stage_phase(stage),
        "stage_current": current,
        "stage_promotions": promotions,
        "stage_candidates": queries.promotable_freight(stage),
        "can_promote": can_promote(role),
    }


def freight_context(project: Project, freight: Freight, role: str) -> dict:
    stages = [
        (s, *queries.availability(s, freight))
        for s in pipeline_order(list(Stage.objects.filter(project=project)))
        if queries.request_for(s, freight.origin_name) is not None
    ]
    return {"freight": freight, "freight_stages": stages, "can_promote": can_promote(role)}


def promotion_context(promotion: Promotion, role: str) -> dict:
    steps = promotion.spec.get("steps", [])
    meta = {m["alias"]: m for m in promotion.status.get("stepExecutionMetadata", [])}
    state = promotion.status.get("state", {})
    rows = []
    for i, step in enumerate(steps):
        alias = step.get("as") or f"step-{i + 1}"
        m = meta.get(alias, {})
        rows.append(
            {
                "index": i + 1,
                "alias": alias,
                "uses": step.get("uses", ""),
                "meta": m,
                "output": state.get(alias),
            }
        )
    done = sum(
        1 for r in rows if r["meta"].get("status") in ("Succeeded", "Skipped", "Failed", "Errored")
    )
    return {
        "pending_reason": pending_reason(promotion) if promotion.phase == "Pending" else "",
        "promotion_freight": Freight.objects.filter(
            project_id=promotion.project_id, name=promotion.freight_name
        ).first(),
        "promotion": promotion,
        "promotion_steps": rows,
        "promotion_done": done,
        "can_promote": can_promote(role),
    }


def pending_reason(promotion: Promotion) -> str:
    """Why a promotion is still Pending, in words: users should never have to guess."""
    queue = Promotion.objects.filter(stage_id=promotion.stage_id)
    running = queue.filter(phase="Running").values_list("name", flat=True).first()
    ahead = (
        queue.filter(phase="Pending")
        .filter(
            Q(created_at__lt=promotion.created_at)
            | Q(created_at=promotion.created_at, id__lt=promotion.id)
        )
        .count()
    )
    if running:
        more = f" and {ahead} other queued promotion{'s' if ahead != 1 else ''}" if ahead else ""
        return f"Queued behind running promotion {running}{more}: a Stage runs one promotion at a time."
    if ahead:
        return f"Queued behind {ahead} earlier promotion{'s' if ahead != 1 else ''} of this Stage."
    return (
        "Next in line: waiting for a worker to start it (the reconciler retries every few seconds)."
    )


@lru_cache(maxsize=32)  # one event's renders arrive within milliseconds
def render_change(project_id: int, role: str, kind: str, obj_id: int, seq: str) -> str:
    """The fragments a page needs after a change, each swapped out-of-band by its id.

    What a page shows depends only on the project and the viewer's role, so every open page of
    the same role gets the same HTML: rendered once per change (`seq`) and role, however many
    pages are open in this process."""
    project = Project.objects.get(id=project_id)
    ctx = page_context(project, role)
    parts = [
        render_to_string(f"{PAGE}#{name}", ctx) for name in ("pipeline", "timeline", "activity")
    ]
    stage = None
    if kind == "promotion":
        promotion = (
            Promotion.objects.select_related("stage").filter(project=project, id=obj_id).first()
        )
        if promotion:
            parts.append(
                render_to_string(
                    f"{PAGE}#promotion-drawer", {**ctx, **promotion_context(promotion, role)}
                )
            )
            stage = promotion.stage
    elif kind == "stage":
        stage = Stage.objects.filter(project=project, id=obj_id).first()
    if stage is not None:
        parts.append(
            render_to_string(f"{PAGE}#stage-drawer", {**ctx, **stage_context(project, stage, role)})
        )
    return "\n".join(parts)
