"""Context builders shared by the page views and the websocket consumer, so a pushed fragment is
rendered by exactly the code that rendered the page."""

from functools import lru_cache

from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from freight.models import Freight
from projects.access import can_abort, can_promote
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
    return pipeline_context(project, role, queries.pipeline(project, before=before))


def pipeline_context(project: Project, role: str, data: queries.PipelineData) -> dict:
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


def freight_context(
    project: Project, freight: Freight, role: str, stages: list[Stage] | None = None
) -> dict:
    """`stages`: the project's Stages when the caller has them already (one query less)."""
    if stages is None:
        stages = list(Stage.objects.filter(project=project))
    now = timezone.now()
    rows = [
        (s, *queries.availability(s, freight, now))
        for s in pipeline_order(stages)
        if s.typed_spec.request_for(freight.origin_name) is not None
    ]
    return {"freight": freight, "freight_stages": rows, "can_promote": can_promote(role)}


def promotion_context(promotion: Promotion, role: str) -> dict:
    steps = promotion.typed_spec.steps
    meta = {m["alias"]: m for m in promotion.status.get("stepExecutionMetadata", [])}
    state = promotion.status.get("state", {})
    rows = []
    for i, step in enumerate(steps):
        alias = step.as_ or f"step-{i + 1}"
        m = meta.get(alias, {})
        rows.append(
            {
                "index": i + 1,
                "alias": alias,
                "uses": step.uses,
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
        "can_abort": can_abort(role),
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
    pages are open in this process. Besides the page's regions it carries the drawers the change
    may alter; a page keeps only the one it has open (the `shown-only` extension, project.html).

    Queries do not grow with the project's Freight: the page's regions take 7 or 8, a Stage's
    and a Promotion's drawers a few each; Freight drawers reuse the pipeline's Stages and Freight
    (no query of their own), and kind "freight" loads its Freight only when the pipeline has not
    (one query: it is neither on the newest timeline page nor held by a Stage)."""
    project = Project.objects.get(id=project_id)
    data = queries.pipeline(project)
    ctx = pipeline_context(project, role, data)
    parts = [
        render_to_string(f"{PAGE}#{name}", ctx) for name in ("pipeline", "timeline", "activity")
    ]
    stage = None
    freight: list[Freight] = []  # whose drawers this change may have altered
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
    elif kind == "freight":
        changed = freight_in_pipeline(data, obj_id) or (
            Freight.objects.filter(project=project, id=obj_id).first()
        )
        freight = [changed] if changed else []
    if stage is not None:
        parts.append(
            render_to_string(f"{PAGE}#stage-drawer", {**ctx, **stage_context(project, stage, role)})
        )
        # What the Stage holds is currently in it, and verified in it once the Stage is
        # verified: that shows in those Freight's drawers, with availability downstream. (Freight
        # that changes also broadcasts kind "freight" itself; this keeps the Stage's and the
        # Freight's drawers of one change consistent.)
        freight = next((v.current for v in data.stages if v.stage.id == stage.id), [])
    stages = [v.stage for v in data.stages]
    for f in freight:
        parts.append(
            render_to_string(
                f"{PAGE}#freight-drawer", {**ctx, **freight_context(project, f, role, stages)}
            )
        )
    return "\n".join(parts)


def freight_in_pipeline(data: queries.PipelineData, freight_id: int) -> Freight | None:
    """The Freight if the pipeline has loaded it already (the newest page, or held by a Stage)."""
    return next((f for f in data.freight_by_name.values() if f.id == freight_id), None)
