"""Kargo manifests in and out: `apply` takes the YAML a Kargo user already has, `export` gives every
object back in Kargo's shape, status included.

A file is applied whole or not at all: every document is parsed and validated first (schema,
references, pipeline cycles), and only a clean file is written, in one transaction.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.apps import apps
from django.db import transaction

from .conditions import rfc3339
from .schemas import CLUSTER_SCOPED, validate_document

KARGO = "kargo.akuity.io/v1alpha1"
ROLLOUTS = "argoproj.io/v1alpha1"

# kind -> (apiVersion, "app_label.Model")
KINDS: dict[str, tuple[str, str]] = {
    "Project": (KARGO, "kargo_ui.Project"),
    "ProjectConfig": (KARGO, "kargo_ui.ProjectConfig"),
    "Warehouse": (KARGO, "freight.Warehouse"),
    "Freight": (KARGO, "freight.Freight"),
    "Stage": (KARGO, "stages.Stage"),
    "Promotion": (KARGO, "stages.Promotion"),
    "PromotionTask": (KARGO, "stages.PromotionTask"),
    "ClusterPromotionTask": (KARGO, "stages.ClusterPromotionTask"),
    "AnalysisTemplate": (ROLLOUTS, "stages.AnalysisTemplate"),
    "ClusterAnalysisTemplate": (ROLLOUTS, "stages.ClusterAnalysisTemplate"),
    "AnalysisRun": (ROLLOUTS, "stages.AnalysisRun"),
}
# Apply order: what others refer to comes first.
ORDER = list(KINDS)

ALIASES = {k.lower(): k for k in KINDS} | {
    "projects": "Project",
    "projectconfigs": "ProjectConfig",
    "warehouses": "Warehouse",
    "stages": "Stage",
    "promotions": "Promotion",
    "promo": "Promotion",
    "promos": "Promotion",
    "promotiontasks": "PromotionTask",
    "promotask": "PromotionTask",
    "clusterpromotiontasks": "ClusterPromotionTask",
    "clusterpromotask": "ClusterPromotionTask",
    "analysistemplates": "AnalysisTemplate",
    "clusteranalysistemplates": "ClusterAnalysisTemplate",
    "analysisruns": "AnalysisRun",
}


class ManifestError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass
class Doc:
    source: str
    index: int  # 1-based document number in its file
    body: dict
    kind: str = ""
    name: str = ""
    namespace: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        label = f"{self.kind}/{self.name}" if self.kind and self.name else "document"
        return f"{self.source}: document {self.index} ({label})"


def resolve_kind(text: str) -> str:
    kind = ALIASES.get(text.lower())
    if kind is None:
        raise ManifestError([f"unknown kind {text!r}; known kinds: {', '.join(KINDS)}"])
    return kind


def load(text: str, source: str) -> list[Doc]:
    """Parse multi-document YAML. Syntax errors name the file, line and column."""
    try:
        bodies = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError([f"{source}:{where}: invalid YAML: {problem}"]) from None
    docs = []
    for i, body in enumerate(bodies, start=1):
        if body is None:
            continue
        doc = Doc(source, i, body)
        if isinstance(body, dict):
            doc.kind = str(body.get("kind", ""))
            meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            doc.name = str(meta.get("name", ""))
            doc.namespace = str(meta.get("namespace", "") or "")
        docs.append(doc)
    return docs


def validate(docs: list[Doc], default_project: str = "") -> list[str]:
    """Every problem with a set of documents, each naming file, document, field path and reason."""
    errors = []
    for doc in docs:
        for err in validate_document(doc.body):
            if (
                doc.kind == "Promotion"
                and err.path == "spec.steps"
                and err.message == "field required"
            ):
                # Kargo's mutating webhook fills a Promotion's steps from its Stage before the
                # schema is checked, so users create Promotions without steps; so does apply.
                continue
            errors.append(f"{doc.where}: {err.path}: {err.message}")
        if errors and any(e.startswith(doc.where) for e in errors):
            continue
        if doc.kind == "Project":
            continue
        if doc.kind in CLUSTER_SCOPED:
            if doc.namespace:
                errors.append(
                    f"{doc.where}: metadata.namespace: {doc.kind} is cluster-scoped and takes no namespace"
                )
            continue
        if not doc.namespace:
            if default_project:
                doc.namespace = default_project
            else:
                errors.append(
                    f"{doc.where}: metadata.namespace: required (the project name), or pass --project"
                )
                continue
        if doc.kind == "ProjectConfig" and doc.name != doc.namespace:
            errors.append(
                f"{doc.where}: metadata.name: a ProjectConfig must be named after its project ({doc.namespace!r})"
            )
    if errors:
        return errors
    errors += check_references(docs)
    return errors


def check_references(docs: list[Doc]) -> list[str]:
    """Projects must exist (or be in the same file); Stage pipelines must be acyclic."""
    Project = apps.get_model("kargo_ui", "Project")
    Stage = apps.get_model("stages", "Stage")
    errors = []
    new_projects = {d.name for d in docs if d.kind == "Project"}
    namespaces = {d.namespace for d in docs if d.namespace}
    existing = set(Project.objects.filter(name__in=namespaces).values_list("name", flat=True))
    for doc in docs:
        if doc.namespace and doc.namespace not in new_projects | existing:
            errors.append(
                f"{doc.where}: metadata.namespace: project {doc.namespace!r} does not exist"
            )
    for project in namespaces:
        graph = {
            s.name: s.upstream_names
            for s in Stage.objects.filter(project__name=project).only("name", "spec")
        }
        file_stages = {d.name: d for d in docs if d.kind == "Stage" and d.namespace == project}
        for name, doc in file_stages.items():
            graph[name] = upstreams(doc.body.get("spec", {}))
        for name, doc in file_stages.items():
            for i, request in enumerate(doc.body.get("spec", {}).get("requestedFreight", [])):
                for j, up in enumerate(request.get("sources", {}).get("stages", []) or []):
                    if up == name:
                        errors.append(
                            f"{doc.where}: spec.requestedFreight[{i}].sources.stages[{j}]: a Stage cannot be its own upstream"
                        )
            cycle = find_cycle(name, graph)
            if cycle:
                errors.append(
                    f"{doc.where}: spec.requestedFreight: creates a cycle in the pipeline: {' -> '.join(cycle)}"
                )
    return errors


def upstreams(spec: dict) -> list[str]:
    return [
        u
        for r in spec.get("requestedFreight", [])
        for u in (r.get("sources", {}).get("stages") or [])
    ]


def find_cycle(start: str, graph: dict[str, list[str]]) -> list[str] | None:
    """A path of upstream edges from `start` back to itself, or None. Breadth-first with a visited
    set, so it is linear in the size of the pipeline, and the cycle it reports is a shortest one."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for up in graph.get(node, []):
            if up == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parents[chain[-1]])
                return [*reversed(chain), start]
            if up not in parents:
                parents[up] = node
                queue.append(up)
    return None


def apply_text(text: str, source: str, actor: str, default_project: str = "") -> list[str]:
    docs = load(text, source)
    return apply_docs(docs, actor, default_project)


def apply_docs(docs: list[Doc], actor: str, default_project: str = "") -> list[str]:
    """Validate everything, then write everything. Returns `<kind>/<name> created|configured|unchanged` lines."""
    errors = validate(docs, default_project)
    if errors:
        raise ManifestError(errors)
    results = []
    with transaction.atomic():
        for doc in sorted(docs, key=lambda d: ORDER.index(d.kind)):
            try:
                results.append(f"{doc.kind.lower()}/{doc.name} {apply_one(doc, actor)}")
            except ManifestError as exc:
                raise ManifestError([f"{doc.where}: {e}" for e in exc.errors]) from None
    return results


def apply_one(doc: Doc, actor: str) -> str:
    from .actions import do_create_project

    body = doc.body
    meta = body.get("metadata", {})
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    Model = apps.get_model(KINDS[doc.kind][1])
    Project = apps.get_model("kargo_ui", "Project")
    if doc.kind == "Project":
        project = Project.objects.filter(name=doc.name).first()
        if project is None:
            do_create_project(doc.name, actor, labels, annotations)
            return "created"
        return save_resource(project, {}, labels, annotations)
    if doc.kind == "Freight":
        return apply_freight(doc, actor)
    if doc.kind == "Promotion":
        return apply_promotion(doc, actor)
    spec = body.get("spec", {}) or {}
    lookup = {"name": doc.name}
    if doc.kind not in CLUSTER_SCOPED:
        project = Project.objects.get(name=doc.namespace)
        lookup["project"] = project
    if doc.kind == "ProjectConfig":
        obj = Model.objects.filter(project=lookup["project"]).first()
    else:
        obj = Model.objects.filter(**lookup).first()
    if obj is None:
        obj = Model(**lookup, spec=spec, labels=labels, annotations=annotations)
        if doc.kind == "AnalysisRun" and body.get("status"):
            obj.status = body["status"]
        obj.save()
        after_create(obj, doc.kind)
        return "created"
    return save_resource(obj, spec, labels, annotations)


def save_resource(obj, spec: dict, labels: dict, annotations: dict) -> str:
    if obj.spec == spec and obj.labels == labels and obj.annotations == annotations:
        return "unchanged"
    if obj.spec != spec:
        obj.generation += 1
    obj.spec, obj.labels, obj.annotations = spec, labels, annotations
    obj.save(update_fields=["spec", "labels", "annotations", "generation", "updated_at"])
    after_update(obj)
    return "configured"


def after_create(obj, kind: str) -> None:
    from .live import broadcast_on_commit

    if kind == "Stage":
        from stages.actions import do_init_stage_status

        do_init_stage_status(obj)
    if kind == "Warehouse":
        from functools import partial

        from freight.tasks import discover_warehouse

        transaction.on_commit(partial(discover_warehouse.delay, obj.id))
    project_id = getattr(obj, "project_id", None)
    if project_id:
        broadcast_on_commit(project_id, kind.lower(), obj.id)


def after_update(obj) -> None:
    from .live import broadcast_on_commit

    project_id = getattr(obj, "project_id", None)
    if project_id:
        broadcast_on_commit(project_id, obj._meta.model_name, obj.id)


def apply_freight(doc: Doc, actor: str) -> str:
    """Freight is named by its content hash whatever name the file gives (as Kargo's webhook does);
    existing Freight may change only its alias."""
    from freight.actions import FreightError, do_create_freight, do_update_alias
    from freight.ids import freight_id

    Project = apps.get_model("kargo_ui", "Project")
    Freight = apps.get_model("freight", "Freight")
    body = doc.body
    project = Project.objects.get(name=doc.namespace)
    origin = body.get("origin") or {}
    content = {k: body.get(k) or [] for k in ("commits", "images", "charts", "artifacts")}
    name = freight_id(
        origin.get("name", ""),
        content["commits"],
        content["images"],
        content["charts"],
        content["artifacts"],
    )
    existing = Freight.objects.filter(project=project, name=name).first()
    alias = body.get("alias", "")
    try:
        if existing is None:
            from .conditions import parse_rfc3339

            discovered = body.get("discoveredAt")
            if discovered and not isinstance(discovered, str):
                discovered = rfc3339(discovered)
            do_create_freight(
                project,
                origin.get("name", ""),
                alias=alias,
                actor=actor,
                discovered_at=parse_rfc3339(discovered) if discovered else None,
                **content,
            )
            return "created"
        if alias and alias != existing.alias:
            do_update_alias(existing, alias, actor)
            return "configured"
    except FreightError as exc:
        raise ManifestError([f"alias: {exc}"]) from None
    return "unchanged"


def apply_promotion(doc: Doc, actor: str) -> str:
    """A Promotion manifest asks for a promotion, exactly as `kargo promote` does."""
    from stages.actions import PromotionError, do_promote

    Stage = apps.get_model("stages", "Stage")
    Freight = apps.get_model("freight", "Freight")
    Promotion = apps.get_model("stages", "Promotion")
    spec = doc.body.get("spec", {})
    if Promotion.objects.filter(project__name=doc.namespace, name=doc.name).exists():
        return "unchanged"
    stage = Stage.objects.filter(project__name=doc.namespace, name=spec.get("stage")).first()
    if stage is None:
        raise ManifestError([f"spec.stage: Stage {spec.get('stage')!r} does not exist"])
    freight = Freight.objects.filter(project=stage.project, name=spec.get("freight")).first()
    if freight is None:
        raise ManifestError([f"spec.freight: Freight {spec.get('freight')!r} does not exist"])
    try:
        do_promote(stage, freight, actor, name=doc.name)
    except PromotionError as exc:
        raise ManifestError([f"spec: {exc}"]) from None
    return "created"


# ---------------------------------------------------------------- export


def export(kind: str, project: str | None = None, name: str | None = None) -> list[dict]:
    Model = apps.get_model(KINDS[kind][1])
    qs = Model.objects.all()
    if kind not in CLUSTER_SCOPED and kind != "Project":
        qs = qs.select_related("project")
        if project:
            qs = qs.filter(project__name=project)
    if kind == "Promotion":
        qs = qs.select_related("stage")
    if name:
        from django.db.models import Q

        qs = qs.filter(Q(name=name) | Q(alias=name)) if kind == "Freight" else qs.filter(name=name)
    return [to_manifest(kind, obj) for obj in qs.order_by("name")]


def metadata(obj, kind: str) -> dict:
    meta: dict[str, Any] = {"name": obj.name}
    if kind not in CLUSTER_SCOPED and kind != "Project":
        meta["namespace"] = obj.project.name
    if obj.labels:
        meta["labels"] = obj.labels
    if obj.annotations:
        meta["annotations"] = obj.annotations
    meta["creationTimestamp"] = rfc3339(obj.created_at)
    if hasattr(obj, "generation"):
        meta["generation"] = obj.generation
    return meta


def to_manifest(kind: str, obj) -> dict:
    doc: dict[str, Any] = {
        "apiVersion": KINDS[kind][0],
        "kind": kind,
        "metadata": metadata(obj, kind),
    }
    if kind == "Freight":
        doc["alias"] = obj.alias
        doc["origin"] = obj.origin
        for key in ("commits", "images", "charts", "artifacts"):
            if getattr(obj, key):
                doc[key] = getattr(obj, key)
        doc["discoveredAt"] = rfc3339(obj.discovered_at)
        doc["status"] = obj.status or {}
        return doc
    if kind != "Project" and obj.spec:
        doc["spec"] = obj.spec
    status = dict(obj.status or {})
    if kind == "Stage":
        status.setdefault("freightHistory", [])
        status["observedGeneration"] = obj.generation
    if status:
        doc["status"] = status
    return doc


def dump_yaml(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
