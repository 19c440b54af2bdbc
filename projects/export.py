"""Any stored object back as the manifest Kargo would show, status included.

Every manifest that leaves the server goes through `to_manifest`: the JSON API, `manage.py kargo
get` and exports, and the remote CLI, which prints what the API returns. So this is where
credentials in URLs are masked (kargo.redaction), in every string of the document: spec, status,
annotations and a Freight's artifacts. What is stored keeps them on purpose (a Warehouse's
`repoURL` must hold its token for discovery to work); a manifest never does. The masked URL is
not a working one: applying an exported manifest back writes `https://***@...`.
"""

from typing import Any

from kargo.redaction import redact_values
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
    """The manifest of `obj`, with credentials in URLs masked everywhere in it."""
    return redact_values(_manifest(kind, obj))


def _manifest(kind: str, obj) -> dict:
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
