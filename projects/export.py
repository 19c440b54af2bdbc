"""Any stored object back as the manifest Kargo would show, status included."""

from typing import Any

from kargo.specs import KINDS
from kargo.times import rfc3339


def metadata(obj, kind: str) -> dict:
    meta: dict[str, Any] = {"name": obj.name}
    if not KINDS[kind].cluster_scoped:
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
        "apiVersion": KINDS[kind].api_version,
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
