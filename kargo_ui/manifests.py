"""Kargo manifests in and out: `apply` takes the YAML a Kargo user already has, `export` gives every
object back in Kargo's shape, status included. This module spans the apps: it is the one place
that knows which Django model stores which kind.

A file is applied whole or not at all: every document is parsed and validated first (schema,
references, pipeline cycles), and only a clean file is written, in one transaction. Specs are
stored as the typed model dumps them: with the defaults Kargo fills (a Warehouse's
`interval: 5m0s`, a git subscription's `discoveryLimit: 20`, ...), so the engine, discovery and
`kargo get` all see what Kargo would.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.db import transaction
from django.db.models import Q

from freight.actions import FreightError, do_create_freight, do_update_alias
from freight.models import Freight, Warehouse
from freight.receivers import do_sync_webhook_receivers_of
from kargo.freight_ids import freight_id
from kargo.specs import KINDS, KargoModel, dump, parse_document, resolve_kind, validate_document
from kargo.specs import SchemaError as SchemaError
from kargo.specs.core import SHARED_NAMESPACE, CoreObject, core_kind, is_core, validate_core
from kargo.times import parse_rfc3339
from kargo.yamlio import YAMLSyntaxError, load_all
from kargo_ui.step_configs import step_config_errors
from projects.actions import (
    do_create_project,
    do_save_config_map,
    do_save_credential,
    record_event,
)
from projects.audit import audit_change
from projects.credentials import (
    config_map_manifest,
    config_maps_of,
    credentials_of,
    secret_manifest,
)
from projects.export import to_manifest
from projects.live import broadcast_on_commit
from projects.models import Project, ProjectConfig
from projects.queue import enqueue_on_commit
from stages.actions import PromotionError, do_init_stage_status, do_promote
from stages.models import (
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    ClusterPromotionTask,
    Promotion,
    PromotionTask,
    Stage,
)

# Which Django model stores each kind (kargo.specs.KINDS says everything else about it).
MODELS = {
    "Project": Project,
    "ProjectConfig": ProjectConfig,
    "Warehouse": Warehouse,
    "Freight": Freight,
    "Stage": Stage,
    "Promotion": Promotion,
    "PromotionTask": PromotionTask,
    "ClusterPromotionTask": ClusterPromotionTask,
    "AnalysisTemplate": AnalysisTemplate,
    "ClusterAnalysisTemplate": ClusterAnalysisTemplate,
    "AnalysisRun": AnalysisRun,
}
assert set(MODELS) == set(KINDS), "every kind needs a model"
# Apply order: what others refer to comes first.
ORDER = list(KINDS)


class ManifestError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass
class Doc:
    source: str
    index: int  # 1-based document number in its file
    body: Any
    kind: str = ""
    name: str = ""
    namespace: str = ""
    model: KargoModel | None = None  # the typed object, once valid
    core: CoreObject | None = None  # a valid v1 Secret or ConfigMap (kargo.specs.core)
    errors: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        label = f"{self.kind}/{self.name}" if self.kind and self.name else "document"
        return f"{self.source}: document {self.index} ({label})"


def kind_named(text: str) -> str:
    kind = resolve_kind(text)
    if kind is None:
        raise ManifestError([f"unknown kind {text!r}; known kinds: {', '.join(KINDS)}"])
    return kind.name


def load(text: str, source: str) -> list[Doc]:
    """Parse multi-document YAML. Syntax errors name the file, line and column."""
    try:
        bodies = load_all(text)
    except YAMLSyntaxError as exc:
        where = f" line {exc.line}, column {exc.column}" if exc.line else ""
        raise ManifestError([f"{source}:{where}: invalid YAML: {exc.problem}"]) from None
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
        if is_core(doc.body):
            errors += validate_core_doc(doc, default_project)
            continue
        found = [
            err
            for err in validate_document(doc.body)
            # Kargo's mutating webhook fills a Promotion's steps from its Stage before the schema
            # is checked, so users create Promotions without steps; so does apply.
            if not (
                doc.kind == "Promotion"
                and (err.path, err.message) == ("spec.steps", "field required")
            )
        ]
        if found:
            errors += [f"{doc.where}: {err.path}: {err.message}" for err in found]
            continue
        # Unknown step config fields, named by step alias and field path (kargo_ui.step_configs).
        errors += [f"{doc.where}: {err}" for err in step_config_errors(doc.kind, doc.body)]
        if doc.kind != "Promotion":
            doc.model = parse_document(doc.body)
        if doc.kind == "Project":
            continue
        if KINDS[doc.kind].cluster_scoped:
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
    errors = []
    new_projects = {d.name for d in docs if d.kind == "Project"}
    # Kargo's shared resources namespace is no project: Secrets and ConfigMaps there are shared.
    namespaces = {d.namespace for d in docs if d.namespace and d.namespace != SHARED_NAMESPACE}
    existing = set(Project.objects.filter(name__in=namespaces).values_list("name", flat=True))
    for doc in docs:
        if doc.namespace and doc.namespace not in new_projects | existing | {SHARED_NAMESPACE}:
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
            graph[name] = doc.model.spec.upstream_names
        for name, doc in file_stages.items():
            for i, request in enumerate(doc.model.spec.requestedFreight):
                for j, up in enumerate(request.sources.stages or []):
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
        for doc in sorted(docs, key=apply_rank):
            try:
                results.append(f"{doc.kind.lower()}/{doc.name} {apply_one(doc, actor)}")
            except ManifestError as exc:
                raise ManifestError([f"{doc.where}: {e}" for e in exc.errors]) from None
        # Webhook receiver URLs derive from the ProjectConfig and its Secrets: re-export them.
        do_sync_webhook_receivers_of(
            {d.namespace for d in docs if d.kind in ("ProjectConfig", "Secret")}
        )
    return results


def apply_rank(doc: Doc) -> float:
    # Secrets and ConfigMaps right after Projects: everything else may need them.
    return 0.5 if doc.core else ORDER.index(doc.kind)


def validate_core_doc(doc: Doc, default_project: str) -> list[str]:
    """A v1 Secret (a Kargo credential) or ConfigMap: its errors, each naming document and field
    (never a value); namespace `kargo-shared-resources` makes it shared by every project."""
    core, found = validate_core(doc.body)
    if found:
        return [f"{doc.where}: {err.path}: {err.message}" for err in found]
    if not doc.namespace:
        if not default_project:
            return [
                f"{doc.where}: metadata.namespace: required (the project name, or "
                f"{SHARED_NAMESPACE} for shared), or pass --project"
            ]
        doc.namespace = default_project
    doc.core = core
    return []


def apply_core(doc: Doc, actor: str) -> str:
    core = doc.core
    project = None if doc.namespace == SHARED_NAMESPACE else Project.objects.get(name=doc.namespace)
    try:
        if core.kind == "ConfigMap":
            return do_save_config_map(
                project,
                core.name,
                core.data,
                actor,
                labels=core.labels,
                annotations=core.annotations,
            )
        return do_save_credential(
            project,
            core.name,
            core.cred_type,
            core.data,
            actor,
            labels=core.labels,
            annotations=core.annotations,
        )
    except ValueError as exc:
        raise ManifestError([str(exc)]) from None


def apply_one(doc: Doc, actor: str) -> str:
    if doc.core:
        return apply_core(doc, actor)
    if doc.kind == "Promotion":
        return apply_promotion(doc, actor)
    model = doc.model
    labels = model.metadata.labels or {}
    annotations = model.metadata.annotations or {}
    Model = MODELS[doc.kind]
    if doc.kind == "Project":
        project = Project.objects.filter(name=doc.name).first()
        if project is None:
            do_create_project(doc.name, actor, labels, annotations)
            return "created"
        return save_resource(project, {}, labels, annotations, actor)
    if doc.kind == "Freight":
        return apply_freight(doc, actor)
    spec = dump(model.spec)
    lookup: dict[str, Any] = {"name": doc.name}
    if not KINDS[doc.kind].cluster_scoped:
        lookup["project"] = Project.objects.get(name=doc.namespace)
    if doc.kind == "ProjectConfig":
        obj = Model.objects.filter(project=lookup["project"]).first()
    else:
        obj = Model.objects.filter(**lookup).first()
    if obj is None:
        obj = Model(**lookup, spec=spec, labels=labels, annotations=annotations)
        if doc.kind == "AnalysisRun" and model.status is not None:
            obj.status = dump(model.status)
        obj.save()
        record_event(
            project_of(obj),
            f"{doc.kind}Created",
            actor,
            f"{doc.kind} {obj.name} created",
            f"{doc.kind}/{obj.name}",
            after={"spec": spec, "labels": labels, "annotations": annotations},
        )
        after_create(obj, doc.kind)
        return "created"
    return save_resource(obj, spec, labels, annotations, actor)


def save_resource(obj, spec: dict, labels: dict, annotations: dict, actor: str) -> str:
    new = {"spec": spec, "labels": labels, "annotations": annotations}
    changed = [key for key, value in new.items() if getattr(obj, key) != value]
    if not changed:
        return "unchanged"
    before = {key: getattr(obj, key) for key in changed}
    if obj.spec != spec:
        obj.generation += 1
    obj.spec, obj.labels, obj.annotations = spec, labels, annotations
    obj.save(update_fields=["spec", "labels", "annotations", "generation", "updated_at"])
    kind = type(obj).__name__
    record_event(
        project_of(obj),
        f"{kind}Updated",
        actor,
        f"{kind} {obj.name} updated ({', '.join(changed)}), generation {obj.generation}",
        f"{kind}/{obj.name}",
        before=before,
        after={key: new[key] for key in changed},
    )
    broadcast(obj)
    return "configured"


def project_of(obj) -> Project | None:
    """The project an object's events belong to: itself, its own, or none (cluster-scoped)."""
    if isinstance(obj, Project):
        return obj
    return getattr(obj, "project", None)


def broadcast(obj) -> None:
    project_id = getattr(obj, "project_id", None)
    if project_id:
        broadcast_on_commit(project_id, obj._meta.model_name, obj.id)


def after_create(obj, kind: str) -> None:
    if kind == "Stage":
        do_init_stage_status(obj)
    if kind == "Warehouse":
        enqueue_on_commit("freight.tasks.discover_warehouse", obj.id)
    broadcast(obj)


def apply_freight(doc: Doc, actor: str) -> str:
    """Freight is named by its content hash whatever name the file gives (as Kargo's webhook does);
    existing Freight may change only its alias."""
    model = doc.model
    project = Project.objects.get(name=doc.namespace)
    origin = model.origin.name if model.origin else ""
    content = {
        key: [dump(item) for item in getattr(model, key) or []]
        for key in ("commits", "images", "charts", "artifacts")
    }
    name = freight_id(
        origin, content["commits"], content["images"], content["charts"], content["artifacts"]
    )
    existing = Freight.objects.filter(project=project, name=name).first()
    alias = model.alias or ""
    try:
        if existing is None:
            do_create_freight(
                project,
                origin,
                alias=alias,
                actor=actor,
                discovered_at=parse_rfc3339(model.discoveredAt),
                **content,
            )
            return "created"
        if alias and alias != existing.alias:
            with audit_change(before={"alias": existing.alias}, after={"alias": alias}):
                do_update_alias(existing, alias, actor)
            return "configured"
    except FreightError as exc:
        raise ManifestError([f"alias: {exc}"]) from None
    return "unchanged"


def apply_promotion(doc: Doc, actor: str) -> str:
    """A Promotion manifest asks for a promotion, exactly as `kargo promote` does. Its steps, if
    any, are not used: the Stage's template is (the typed model needs steps, so the validated
    document is read as it is)."""
    spec = doc.body["spec"]
    if Promotion.objects.filter(project__name=doc.namespace, name=doc.name).exists():
        return "unchanged"
    stage = Stage.objects.filter(project__name=doc.namespace, name=spec["stage"]).first()
    if stage is None:
        raise ManifestError([f"spec.stage: Stage {spec['stage']!r} does not exist"])
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
    """The manifests of `kind` (`kargo get`, the API, exports), credentials in URLs masked by
    to_manifest: an export never carries a repository's token, so applying it back does not
    restore one (a masked `https://***@...` repoURL would replace the working URL)."""
    qs = MODELS[kind].objects.all()
    if not KINDS[kind].cluster_scoped:
        qs = qs.select_related("project")
        if project:
            qs = qs.filter(project__name=project)
    if kind == "Promotion":
        qs = qs.select_related("stage")
    if name:
        qs = qs.filter(Q(name=name) | Q(alias=name)) if kind == "Freight" else qs.filter(name=name)
    return [to_manifest(kind, obj) for obj in qs.order_by("name")]


def export_core(kind: str, project_id: int | None, name: str | None = None) -> list[dict]:
    """Secrets (every value ***: never exported) or ConfigMaps of a project (None: the shared
    ones), for `kargo get secrets|configmaps` and the API."""
    if kind == "Secret":
        rows = credentials_of(project_id)
        return [secret_manifest(r) for r in (rows.filter(name=name) if name else rows)]
    rows = config_maps_of(project_id)
    return [config_map_manifest(r) for r in (rows.filter(name=name) if name else rows)]


def is_core_kind(text: str) -> bool:
    return core_kind(text) is not None


def dump_yaml(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
