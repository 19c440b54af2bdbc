"""The project page's regions, each rendered from its own context: the pipeline (its graph and
one card per Stage and Warehouse), the Freight timeline (one entry per Freight), the activity list
and the drawers. The page views and the live pushes (stages.live) render through these functions
only, so a pushed fragment is exactly what a reload would show.

Cards and timeline entries are cached as rendered HTML, keyed by everything they show (a row's
id and updated_at, its running promotion, its queue): a page load renders only what changed since
any page was last rendered, and reads the rest as two narrow queries. Links are built from the
project's base path rather than by the URL resolver, which cost a third of a 500-Stage page.
"""

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import quote

from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from freight.models import Freight, Warehouse
from freight.queries import freight_total
from projects.access import Needs, can_abort, can_promote, has_role
from projects.live import current_seq
from projects.models import Event, Project
from projects.templatetags.kargo import phase_class
from projects.web import PAGE

from . import queries
from .autopromotion import auto_promotion_state
from .graph import Layout, layout, pipeline_order
from .models import AnalysisRun, Promotion, PromotionPhase, Stage

# Stage colours come from the name, so adding a Stage never repaints the others. No red: it
# reads as failure.
STAGE_COLORS = [
    "#4f7cff",
    "#12a150",
    "#d97706",
    "#c026d3",
    "#0891b2",
    "#65a30d",
    "#7c3aed",
    "#db2777",
    "#0d9488",
    "#9333ea",
]
TIMELINE_PAGE = 60
ACTIVITY_SIZE = 12


def stage_color(name: str) -> str:
    return STAGE_COLORS[zlib.crc32(name.encode()) % len(STAGE_COLORS)]


def project_base(project: Project) -> str:
    """The project's path; links append `stage/<name>/` and the like to it, matching the
    patterns in stages/urls.py (tests/http/test_links.py holds them equal to reverse())."""
    return f"/project/{quote(project.name, safe='')}/"


class RenderCache:
    """Rendered HTML by a key naming everything it shows; least recently used entries go first.
    Shared by the request threads and the live renderer's threads of one process."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self.lock:
            html = self.items.get(key)
            if html is None:
                self.misses += 1
                return None
            self.items.move_to_end(key)
            self.hits += 1
            return html

    def put(self, key, html: str) -> None:
        with self.lock:
            self.items[key] = html
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.hits = self.misses = 0


CARDS = RenderCache(20_000)  # stage and warehouse cards, timeline entries
LAYOUTS = RenderCache(256)  # a project's graph, by the shape of its pipeline


# --- the pipeline ----------------------------------------------------------------------------


@dataclass
class Slot:
    """A node's place in the graph; the card inside is swapped alone when it changes."""

    kind: str  # "stage" | "warehouse"
    id: int
    name: str
    x: int
    y: int
    color: str
    html: str = ""


@dataclass
class Graph:
    width: int
    height: int
    edges_svg: str  # the edges, rendered once per layout
    slots: list[Slot]
    stage_rank: dict[str, tuple[int, float]]  # name -> (rank, order): the pipeline's reading order
    stage_options: str = ""  # <option>s of the Stage names, for the jump form


def pipeline_graph(project: Project, stage_rows: list, warehouses: list) -> Graph:
    """The laid-out graph for the pipeline's shape: which Stages and Warehouses exist and their
    spec generations. Parsing 500 specs and laying them out happens only when that shape changes."""
    key = (
        project.id,
        tuple((r["id"], r["name"], r["generation"]) for r in stage_rows),
        tuple((w.id, w.name, w.generation) for w in warehouses),
    )
    graph = LAYOUTS.get(key)
    if graph is None:
        graph = build_graph(project, warehouses)
        LAYOUTS.put(key, graph)
    return graph


def build_graph(project: Project, warehouses: list) -> Graph:
    stages = list(Stage.objects.filter(project=project).only("id", "name", "spec"))
    views = [
        SimpleNamespace(stage=s, upstream=s.upstream_names, warehouses=s.warehouse_names)
        for s in stages
    ]
    shape: Layout = layout(warehouses, views)
    slots = []
    for n in shape.nodes:
        if n.kind == "warehouse":
            slots.append(Slot("warehouse", n.obj.id, n.name, n.x, n.y, ""))
        else:
            slots.append(Slot("stage", n.obj.stage.id, n.name, n.x, n.y, stage_color(n.name)))
    ranks = {n.name: (n.rank, n.order) for n in shape.nodes if n.kind == "stage"}
    edges_svg = format_html_join(
        "",
        '<path d="{}" class="edge{}"/>',
        ((e.path, " edge-wh" if e.source.kind == "warehouse" else "") for e in shape.edges),
    )
    stage_options = format_html_join(
        "", '<option value="{}">', ((n.name,) for n in shape.nodes if n.kind == "stage")
    )
    return Graph(shape.width, shape.height, edges_svg, slots, ranks, stage_options)


def slots_html(slots: list[Slot]) -> str:
    """The graph's nodes: each card in its positioned slot. Joined here rather than in a
    template loop, which cost most of a 500-Stage page; every piece is escaped HTML already."""
    return mark_safe(
        "".join(
            f'<div class="slot" style="left: {s.x}px; top: {s.y}px'
            f'{"; --c: " + s.color if s.color else ""}">{s.html}</div>'
            for s in slots
        )
    )


@dataclass
class Shape:
    """What the pipeline region starts from: its Stages as narrow rows, its Warehouses, and the
    graph laid out for them (from the layout cache when the shape has not changed)."""

    stage_rows: list[dict]
    warehouses: list[Warehouse]
    graph: Graph


def pipeline_shape(project: Project) -> Shape:
    stage_rows = list(
        Stage.objects.filter(project=project)
        .order_by()
        .values("id", "name", "generation", "updated_at")
    )
    warehouses = list(Warehouse.objects.filter(project=project))
    return Shape(stage_rows, warehouses, pipeline_graph(project, stage_rows, warehouses))


def pipeline_context(
    project: Project, role: str, csrf_token: str = "", shape: Shape | None = None
) -> dict:
    """`shape`: the pipeline's, when the caller has read it already (a push renders this once
    per role)."""
    shape = shape or pipeline_shape(project)
    stage_rows, warehouses, graph = shape.stage_rows, shape.warehouses, shape.graph
    base = project_base(project)
    cards = stage_cards(project, base, {r["id"]: r["updated_at"] for r in stage_rows})
    promoter = can_promote(role)
    wh_cards = warehouse_cards(project, warehouses, base, promoter, csrf_token)
    slots = [
        Slot(
            s.kind,
            s.id,
            s.name,
            s.x,
            s.y,
            s.color,
            cards.get(s.id, ("", ""))[0] if s.kind == "stage" else wh_cards.get(s.id, ""),
        )
        for s in graph.slots
    ]
    return {
        "graph": graph,
        "slots": slots,
        "slots_html": slots_html(slots),
        "overview": overview(graph, base, cards),
    }


OVERVIEW_FROM = 10  # Stages: a pipeline this large gets the overview above its graph


def overview(graph: Graph, base: str, cards: dict[int, tuple[str, str]]) -> list[str]:
    """Every Stage as a small square coloured by its phase, one column per depth level (the
    graph's ranks): a 500-Stage pipeline fits one screen. Empty for small pipelines. Each level
    is its squares joined (cached, escaped HTML), not a template loop."""
    stages = [s for s in graph.slots if s.kind == "stage"]
    if len(stages) < OVERVIEW_FROM:
        return []
    levels: dict[int, list[Slot]] = {}
    for s in stages:
        levels.setdefault(graph.stage_rank[s.name][0], []).append(s)
    return [
        mark_safe(
            "".join(
                overview_square(s.id, s.name, cards.get(s.id, ("", "Unknown"))[1], base)
                for s in level
            )
        )
        for _, level in sorted(levels.items())
    ]


def overview_square(stage_id: int, name: str, phase: str, base: str) -> str:
    key = ("square", stage_id, name, phase, base)
    html = CARDS.get(key)
    if html is None:
        html = render_square(stage_id, name, phase, base)
        CARDS.put(key, html)
    return html


def render_square(stage_id: int, name: str, phase: str, base: str) -> str:
    return format_html(
        '<a class="ov ov-{}" id="ov-{}" href="{}stage/{}/" hx-get="{}stage/{}/" hx-target="#drawer"'
        ' title="{} · {}" aria-label="{}: {}"></a>',
        phase_class(phase),
        stage_id,
        base,
        name,
        base,
        name,
        name,
        phase,
        name,
        phase,
    )


def open_promotions(project_id: int, stage_ids=None) -> tuple[dict, dict]:
    """(Running promotion's (id, updated_at) by stage, Pending count by stage)."""
    qs = Promotion.objects.filter(
        project_id=project_id, phase__in=[PromotionPhase.PENDING, PromotionPhase.RUNNING]
    )
    if stage_ids is not None:
        qs = qs.filter(stage_id__in=stage_ids)
    running, pending = {}, {}
    for promo_id, stage_id, phase, updated in qs.order_by().values_list(
        "id", "stage_id", "phase", "updated_at"
    ):
        if phase == PromotionPhase.RUNNING:
            running[stage_id] = (promo_id, updated)
        else:
            pending[stage_id] = pending.get(stage_id, 0) + 1
    return running, pending


def stage_cards(
    project: Project, base: str, updated: dict[int, object]
) -> dict[int, tuple[str, str]]:
    """Each Stage's card and phase, from the cache where nothing the card shows changed.
    `updated`: the Stages' updated_at by id. A fixed number of queries, however many cards must
    be rendered."""
    running, pending = open_promotions(project.id, None if len(updated) > 50 else list(updated))
    keys = {
        stage_id: ("stage", project.id, stage_id, at, running.get(stage_id), pending.get(stage_id))
        for stage_id, at in updated.items()
    }
    html = {stage_id: CARDS.get(key) for stage_id, key in keys.items()}
    missing = [stage_id for stage_id, h in html.items() if h is None]
    if missing:
        stages = list(Stage.objects.filter(id__in=missing))
        names = {n for s in stages for n in queries.current_freight_names(s.status)}
        freight = (
            {f.name: f for f in Freight.objects.filter(project=project, name__in=names)}
            if names
            else {}
        )
        active_ids = [running[s.id][0] for s in stages if s.id in running]
        active = {
            p.stage_id: p
            for p in Promotion.objects.filter(id__in=active_ids).only(
                "id", "name", "stage_id", "status", "project_id"
            )
        }
        for stage in stages:
            view = queries.StageView(
                stage=stage,
                phase=queries.stage_phase(stage),
                current=[
                    freight[n] for n in queries.current_freight_names(stage.status) if n in freight
                ],
                active=active.get(stage.id),
                pending=pending.get(stage.id, 0),
                reason=queries.phase_reason(stage),
            )
            card = render_to_string(f"{PAGE}#stage-card", {"v": view, "base": base})
            html[stage.id] = (card, view.phase)
            CARDS.put(keys[stage.id], html[stage.id])
    return {stage_id: h for stage_id, h in html.items() if h is not None}


def warehouse_cards(
    project: Project, warehouses: list, base: str, promoter: bool, csrf_token: str
) -> dict[int, str]:
    """Warehouse cards are few and carry a form with the viewer's CSRF token: rendered each time."""
    ctx = {"base": base, "can_promote": promoter, "project": project, "csrf_token": csrf_token}
    return {w.id: render_to_string(f"{PAGE}#warehouse-card", {**ctx, "w": w}) for w in warehouses}


# --- the timeline ----------------------------------------------------------------------------


def timeline_context(project: Project, graph: Graph, before: str = "") -> dict:
    """One page of the Freight timeline, newest first (keyset paging: `before` is the name of the
    last Freight of the previous page; an unknown name shows the newest page)."""
    freight_qs = Freight.objects.filter(project=project)
    cursor = (
        freight_qs.filter(name=before).values("discovered_at", "name").first() if before else None
    )
    page_qs = freight_qs
    if cursor:
        # In the timeline's own order (-discovered_at, -name): no Freight is skipped or shown
        # twice when several share a timestamp.
        # The first filter bounds the index scan at the cursor; the second drops the ties
        # already shown.
        page_qs = freight_qs.filter(discovered_at__lte=cursor["discovered_at"]).filter(
            Q(discovered_at__lt=cursor["discovered_at"]) | Q(name__lt=cursor["name"])
        )
    # What an entry's cache key needs; a missed entry loads the rest of its row.
    page = list(page_qs.only(*ENTRY_KEY_FIELDS)[: TIMELINE_PAGE + 1])
    has_older = len(page) > TIMELINE_PAGE
    page = page[:TIMELINE_PAGE]
    base = project_base(project)
    return {
        "timeline": timeline_entries(page, graph, base),
        "freight_total": freight_total(project),
        "freight_more": has_older,
        "freight_paged": bool(cursor),
        "oldest": page[-1].name if page else "",
    }


def holders_of(freight: Freight, graph: Graph) -> list[tuple[str, str]]:
    """The Stages holding the Freight, in the pipeline's reading order, with their colours."""
    names = sorted(
        freight.status.get("currentlyIn", {}),
        key=lambda n: (*graph.stage_rank.get(n, (1_000_000, 0)), n),
    )
    return [(n, stage_color(n)) for n in names]


ENTRY_KEY_FIELDS = ("id", "project_id", "name", "alias", "status", "discovered_at")


def entry_key(freight: Freight, graph: Graph, base: str) -> tuple:
    return ("freight", freight.id, freight.alias, tuple(holders_of(freight, graph)), base)


def timeline_entries(page: list[Freight], graph: Graph, base: str) -> list[tuple[Freight, str]]:
    """(Freight, its rendered entry) for a page of Freight loaded with ENTRY_KEY_FIELDS."""
    html = {f.id: CARDS.get(entry_key(f, graph, base)) for f in page}
    missing = [f.id for f in page if html[f.id] is None]
    for f in Freight.objects.filter(id__in=missing) if missing else []:
        html[f.id] = timeline_entry(f, graph, base)
    return [(f, html[f.id]) for f in page]


def timeline_entry(freight: Freight, graph: Graph, base: str) -> str:
    key = entry_key(freight, graph, base)
    html = CARDS.get(key)
    if html is None:
        ctx = {"f": freight, "holders": holders_of(freight, graph), "base": base}
        html = render_to_string(f"{PAGE}#freight-entry", ctx)
        CARDS.put(key, html)
    return html


# --- the page and its drawers ----------------------------------------------------------------


def activity_context(project: Project) -> dict:
    return {"events": list(Event.objects.filter(project=project)[:ACTIVITY_SIZE])}


def page_context(project: Project, role: str, before: str = "", csrf_token: str = "") -> dict:
    # Read before the regions: the page has seen every change up to this number.
    live_seq = current_seq(project.id)
    pipeline = pipeline_context(project, role, csrf_token)
    return {
        "live_seq": live_seq,
        "project": project,
        "role": role,
        "base": project_base(project),
        "can_promote": can_promote(role),
        **pipeline,
        **timeline_context(project, pipeline["graph"], before),
        **activity_context(project),
    }


def stage_context(project: Project, stage: Stage, role: str) -> dict:
    promotions = queries.recent_promotions(stage)
    names = queries.current_freight_names(stage.status)
    current = list(Freight.objects.filter(project=project, name__in=names)) if names else []
    history = stage.status.get("freightHistory") or []
    verifications = (history[0].get("verificationHistory") or []) if history else []
    latest = verifications[0] if verifications else {}
    return {
        "base": project_base(project),
        "stage": stage,
        "stage_phase": queries.stage_phase(stage),
        "stage_current": current,
        "stage_promotions": promotions,
        "stage_candidates": queries.promotable_freight(stage),
        "stage_verifications": verifications,
        "stage_verifying": latest.get("phase") in ("Pending", "Running"),
        "stage_verifies": bool(stage.spec.get("verification")),
        "stage_auto": auto_promotion_state(stage),
        "can_promote": can_promote(role),
        "can_verify": has_role(role, Needs.REVERIFY),
        "can_manage": has_role(role, Needs.MANAGE),
    }


def run_context(run: AnalysisRun, role: str) -> dict:
    """An AnalysisRun's drawer: each metric with its provider, conditions, counts and its
    measurements, newest first."""
    results = {r["name"]: r for r in run.status.get("metricResults") or []}
    metrics = []
    for metric in run.spec.get("metrics") or []:
        provider = next((k for k, v in (metric.get("provider") or {}).items() if v), "?")
        result = results.get(metric["name"], {})
        metrics.append(
            {
                "name": metric["name"],
                "provider": provider,
                "metric": metric,
                "result": result,
                "measurements": list(reversed(result.get("measurements") or [])),
            }
        )
    stage = run.stage if run.stage_id else None
    return {
        "base": project_base(run.project),
        "run": run,
        "run_metrics": metrics,
        "run_stage": stage,
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
    running = (
        queue.filter(phase="Running")
        .order_by("created_at", "id")  # promotion_stage_queue's order: an index lookup
        .values_list("name", flat=True)
        .first()
    )
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
    stage = Stage.objects.filter(id=promotion.stage_id).only("status").first()
    latest = queries.latest_verification_of(stage.status) if stage else None
    if latest and latest.get("phase") in ("Pending", "Running"):
        run = (latest.get("analysisRun") or {}).get("name")
        return (
            "Waiting for the verification of the Stage's current Freight"
            + (f" (AnalysisRun {run})" if run else "")
            + " to end: the next promotion starts after it."
        )
    return (
        "Next in line: waiting for a worker to start it (the reconciler retries every few seconds)."
    )


# --- live pushes -----------------------------------------------------------------------------


@dataclass
class Fragment:
    """A piece of a live push, swapped into the element with id `target`. `audience`: "all"
    pages, pages on the "newest" timeline page, or "drawer" (pages with that drawer open)."""

    target: str
    html: str
    audience: str = "all"


DRAWER_KINDS = ("stage", "freight", "promotion", "analysisrun")


def render_changes(
    project_id: int,
    changes: set[tuple[str, int]],
    roles: set[str],
    drawers: set[str],
    known: dict,
) -> dict[str, list[Fragment]]:
    """The fragments a set of changes touches, rendered once (or once per role where the role
    shows: buttons), by role. `drawers`: the drawer ids open on some page (no other drawer is
    rendered). `known`: what the caller's pages were last sent (the pipeline's shape, the newest
    timeline page); a change of either re-renders that whole region, otherwise only the cards,
    entries and drawers of the changed objects are. A change of kind "project" (or an unknown
    kind) re-renders every region."""
    project = Project.objects.filter(id=project_id).first()
    if project is None or not roles:
        return {}
    base = project_base(project)
    shape = pipeline_shape(project)
    stage_rows, warehouses, graph = shape.stage_rows, shape.warehouses, shape.graph
    by_kind: dict[str, set[int]] = {}
    for kind, obj_id in changes:
        by_kind.setdefault(
            kind
            if kind in ("stage", "promotion", "freight", "warehouse", "analysisrun")
            else "project",
            set(),
        ).add(obj_id)
    # The graph the caller's pages show: unknown to a feed that just started (its pages were
    # rendered with the current one, or re-sync by their change numbers).
    whole = "project" in by_kind or known.get("graph", graph) is not graph
    known["graph"] = graph
    shared: list[Fragment] = []
    per_role: dict[str, list[Fragment]] = {role: [] for role in roles}

    stage_ids = set(by_kind.get("stage", ()))
    promotions = []
    if by_kind.get("promotion"):
        promotions = list(
            Promotion.objects.filter(project=project, id__in=by_kind["promotion"]).select_related(
                "stage"
            )
        )
        stage_ids |= {p.stage_id for p in promotions}

    first_page = list(
        Freight.objects.filter(project=project).values_list("id", flat=True)[:TIMELINE_PAGE]
    )
    new_timeline = known.get("timeline") != first_page
    known["timeline"] = first_page

    if whole:
        for role in roles:
            ctx = {
                "project": project,
                "role": role,
                "base": base,
                "can_promote": can_promote(role),
                **pipeline_context(project, role, shape=shape),
                **timeline_context(project, graph),
            }
            per_role[role] += [
                Fragment("pipeline", render_to_string(f"{PAGE}#pipeline", ctx)),
                Fragment("timeline", render_to_string(f"{PAGE}#timeline", ctx), "newest"),
            ]
    else:
        updated = {r["id"]: r["updated_at"] for r in stage_rows if r["id"] in stage_ids}
        names = {r["id"]: r["name"] for r in stage_rows}
        big = sum(1 for s in graph.slots if s.kind == "stage") >= OVERVIEW_FROM
        for stage_id, (html, phase) in stage_cards(project, base, updated).items():
            shared.append(Fragment(f"stage-{stage_id}", html))
            if big:
                square = overview_square(stage_id, names[stage_id], phase, base)
                shared.append(Fragment(f"ov-{stage_id}", square))
        changed_warehouses = [w for w in warehouses if w.id in by_kind.get("warehouse", ())]
        for role in roles:
            cards = warehouse_cards(project, changed_warehouses, base, can_promote(role), "")
            per_role[role] += [Fragment(f"warehouse-{wid}", html) for wid, html in cards.items()]
        changed_freight = by_kind.get("freight", set())
        if changed_freight and new_timeline:
            for role in roles:
                ctx = {"project": project, "base": base, "can_promote": can_promote(role)}
                ctx.update(timeline_context(project, graph))
                per_role[role].append(
                    Fragment("timeline", render_to_string(f"{PAGE}#timeline", ctx), "newest")
                )
        elif changed_freight & set(first_page):
            for f in Freight.objects.filter(id__in=changed_freight & set(first_page)):
                shared.append(Fragment(f"freight-{f.id}", timeline_entry(f, graph, base), "newest"))

    activity = render_to_string(f"{PAGE}#activity", activity_context(project))
    shared.append(Fragment("activity", activity))

    # Drawers: only those some page has open, and only of what changed.
    wanted = {d for d in drawers if whole or touches(d, stage_ids, by_kind, promotions)}
    if wanted:
        for role in roles:
            per_role[role] += render_drawers(project, wanted, role)
    return {role: shared + per_role[role] for role in roles}


def touches(drawer: str, stage_ids: set[int], by_kind: dict, promotions: list) -> bool:
    kind, _, obj_id = drawer.rpartition("-drawer-")
    obj = int(obj_id)
    if kind == "stage":
        return obj in stage_ids
    if kind == "promotion":
        return obj in by_kind.get("promotion", ())
    if kind == "analysisrun":
        return obj in by_kind.get("analysisrun", ())
    # A Freight drawer shows the Freight's availability in every Stage: a Stage's change may
    # alter it (its verification, its current Freight).
    return obj in by_kind.get("freight", ()) or bool(stage_ids)


def render_drawers(project: Project, targets: set[str], role: str) -> list[Fragment]:
    ids: dict[str, set[int]] = {kind: set() for kind in DRAWER_KINDS}
    for target in targets:
        kind, _, obj_id = target.rpartition("-drawer-")
        ids[kind].add(int(obj_id))
    base = {"project": project, "base": project_base(project)}
    out = []
    for stage in Stage.objects.filter(project=project, id__in=ids["stage"]) if ids["stage"] else []:
        ctx = {**base, **stage_context(project, stage, role)}
        out.append(
            Fragment(
                f"stage-drawer-{stage.id}", render_to_string(f"{PAGE}#stage-drawer", ctx), "drawer"
            )
        )
    if ids["promotion"]:
        for promotion in Promotion.objects.filter(
            project=project, id__in=ids["promotion"]
        ).select_related("stage"):
            ctx = {**base, **promotion_context(promotion, role)}
            html = render_to_string(f"{PAGE}#promotion-drawer", ctx)
            out.append(Fragment(f"promotion-drawer-{promotion.id}", html, "drawer"))
    if ids["analysisrun"]:
        for run in AnalysisRun.objects.filter(
            project=project, id__in=ids["analysisrun"]
        ).select_related("project", "stage"):
            ctx = {**base, **run_context(run, role)}
            html = render_to_string(f"{PAGE}#run-drawer", ctx)
            out.append(Fragment(f"analysisrun-drawer-{run.id}", html, "drawer"))
    if ids["freight"]:
        stages = list(Stage.objects.filter(project=project))
        for freight in Freight.objects.filter(project=project, id__in=ids["freight"]):
            ctx = {**base, **freight_context(project, freight, role, stages)}
            html = render_to_string(f"{PAGE}#freight-drawer", ctx)
            out.append(Fragment(f"freight-drawer-{freight.id}", html, "drawer"))
    return out
