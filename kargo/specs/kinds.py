"""The registry of the kinds this project accepts, and validation of one manifest against it."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kargo.errors import FieldError, field_errors, one_of
from kargo.specs.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from kargo.specs.base import KARGO_API_VERSION, ROLLOUTS_API_VERSION, KargoModel
from kargo.specs.freight import Freight
from kargo.specs.project import Project, ProjectConfig
from kargo.specs.promotion import ClusterPromotionTask, Promotion, PromotionTask
from kargo.specs.stage import Stage
from kargo.specs.warehouse import Warehouse


@dataclass(frozen=True)
class Kind:
    """One kind this project accepts: its API group version, its typed model, its scope and the
    names `kargo get` accepts for it (as kubectl's plural and short names)."""

    name: str
    api_version: str
    model: type[KargoModel]
    cluster_scoped: bool = False
    aliases: tuple[str, ...] = ()


# The one registry of kinds, in apply order: what others refer to comes first.
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("Project", KARGO_API_VERSION, Project, True, ("projects",)),
        Kind("ProjectConfig", KARGO_API_VERSION, ProjectConfig, False, ("projectconfigs",)),
        Kind("Warehouse", KARGO_API_VERSION, Warehouse, False, ("warehouses",)),
        Kind("Freight", KARGO_API_VERSION, Freight),
        Kind("Stage", KARGO_API_VERSION, Stage, False, ("stages",)),
        Kind("Promotion", KARGO_API_VERSION, Promotion, False, ("promotions", "promo", "promos")),
        Kind(
            "PromotionTask",
            KARGO_API_VERSION,
            PromotionTask,
            False,
            ("promotiontasks", "promotask"),
        ),
        Kind(
            "ClusterPromotionTask",
            KARGO_API_VERSION,
            ClusterPromotionTask,
            True,
            ("clusterpromotiontasks", "clusterpromotask"),
        ),
        Kind(
            "AnalysisTemplate",
            ROLLOUTS_API_VERSION,
            AnalysisTemplate,
            False,
            ("analysistemplates",),
        ),
        Kind(
            "ClusterAnalysisTemplate",
            ROLLOUTS_API_VERSION,
            ClusterAnalysisTemplate,
            True,
            ("clusteranalysistemplates",),
        ),
        Kind("AnalysisRun", ROLLOUTS_API_VERSION, AnalysisRun, False, ("analysisruns",)),
    )
}

CLUSTER_SCOPED: set[str] = {name for name, kind in KINDS.items() if kind.cluster_scoped}

_BY_ALIAS = {name.lower(): name for name in KINDS} | {
    alias: name for name, kind in KINDS.items() for alias in kind.aliases
}


def resolve_kind(text: str) -> Kind | None:
    """The kind a user means by `Stage`, `stages`, `promo`, ... (case-insensitive), or None."""
    name = _BY_ALIAS.get(text.lower())
    return KINDS[name] if name else None


class SchemaError(ValueError):
    """Raised by :func:`parse_document`; ``errors`` holds the :class:`FieldError` list."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("invalid document: " + "; ".join(str(error) for error in errors))


def _check_type_fields(doc: dict) -> list[FieldError]:
    """Check apiVersion and kind, which decide which model validates the rest."""
    api_versions = sorted({kind.api_version for kind in KINDS.values()})
    errors = []
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    if api_version is None:
        errors.append(FieldError("apiVersion", "field required"))
    elif not isinstance(api_version, str):
        errors.append(FieldError("apiVersion", "must be a string"))
    elif api_version not in api_versions:
        errors.append(FieldError("apiVersion", one_of(api_versions)))
    if kind is None:
        errors.append(FieldError("kind", "field required"))
    elif not isinstance(kind, str):
        errors.append(FieldError("kind", "must be a string"))
    elif not errors and (kind not in KINDS or KINDS[kind].api_version != api_version):
        kinds = [name for name, known in KINDS.items() if known.api_version == api_version]
        errors.append(FieldError("kind", f"{one_of(kinds)} for apiVersion {api_version}"))
    return errors


def _validate(doc: Any) -> tuple[BaseModel | None, list[FieldError]]:
    if not isinstance(doc, dict):
        return None, [
            FieldError("apiVersion", "document must be an object with apiVersion and kind")
        ]
    errors = _check_type_fields(doc)
    if errors:
        return None, errors
    try:
        return KINDS[doc["kind"]].model.model_validate(doc), []
    except ValidationError as exc:
        return None, field_errors(exc)


def dump(model: BaseModel | None) -> dict:
    """A typed object as JSON in Kargo's field names: defaults filled, unset fields left out
    (free-form content, such as a step's config, is kept exactly as written)."""
    if model is None:
        return {}
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def validate_document(doc: Any) -> list[FieldError]:
    """Validate one manifest; return its errors, or [] when Kargo would accept it."""
    return _validate(doc)[1]


def parse_document(doc: dict):
    """Validate one manifest and return its model instance; raise SchemaError if invalid."""
    instance, errors = _validate(doc)
    if errors:
        raise SchemaError(errors)
    return instance
