"""Step configs checked at apply: a field a step's config model does not know is refused, as
Kargo's step schemas (additionalProperties: false) refuse it, with the step's alias and the
field's path.

Only field NAMES are checked here. Values may still hold ``${{ }}`` expressions, which are
evaluated when the step runs, so their types and the required fields are checked then. A step
named by an unknown ``uses`` is accepted, as Kargo's admission webhook accepts it (the step may
come from a newer Kargo or a plug-in); the promotion reports it when it gets there.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from stages.steps import STEPS

# Where each kind keeps its steps, as a path into the manifest and into the body.
STEP_LISTS = {
    "Stage": ("spec.promotionTemplate.spec.steps", ("spec", "promotionTemplate", "spec", "steps")),
    "PromotionTask": ("spec.steps", ("spec", "steps")),
    "ClusterPromotionTask": ("spec.steps", ("spec", "steps")),
    "Promotion": ("spec.steps", ("spec", "steps")),
}


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config models a field's annotation allows at its own level (Optional and unions
    unwrapped; lists and dicts are followed by ``_children``)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _item_annotation(annotation: Any) -> list[Any]:
    """The annotations of a list's items or a dict's values in ``annotation`` (unions unwrapped)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _item_annotation(args[0])
    if origin in (typing.Union, types.UnionType):
        return [a for arg in args for a in _item_annotation(arg)]
    if origin in (list, tuple, set, frozenset) and args:
        return [args[0]]
    if origin is dict and len(args) == 2:
        return [args[1]]
    return []


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    names = {}
    for name, info in model.model_fields.items():
        names[info.alias or name] = info.annotation
        if isinstance(info.validation_alias, str):
            names[info.validation_alias] = info.annotation
    return names


def _unknown(value: Any, annotations: list[Any], path: str) -> Iterator[str]:
    if isinstance(value, dict):
        models = [m for a in annotations for m in _models(a)]
        if models:
            # With several candidate models (a union), judge by the one that fits best.
            best = min(models, key=lambda m: len(set(value) - set(_field_names(m))))
            fields = _field_names(best)
            forbids = best.model_config.get("extra") == "forbid"
            for key, item in value.items():
                if key not in fields:
                    if forbids:
                        yield f"{path}.{key}: unknown field"
                    continue
                yield from _unknown(item, [fields[key]], f"{path}.{key}")
            return
        for key, item in value.items():
            inner = [i for a in annotations for i in _item_annotation(a)]
            if inner:
                yield from _unknown(item, inner, f"{path}.{key}")
    elif isinstance(value, list):
        inner = [i for a in annotations for i in _item_annotation(a)]
        if inner:
            for n, item in enumerate(value):
                yield from _unknown(item, inner, f"{path}[{n}]")


def unknown_fields(uses: str, config: Any) -> list[str]:
    """``config.<path>: unknown field`` for each field of ``config`` that the config model of
    step ``uses`` does not know; [] for a step this server does not have."""
    step = STEPS.get(uses)
    if step is None or not isinstance(config, dict):
        return []
    return list(_unknown(config, [step.Config], "config"))


def step_config_errors(kind: str, body: Any) -> list[str]:
    """Every unknown config field in the steps of a Stage, (Cluster)PromotionTask or
    Promotion manifest, as ``<steps path>[i] (<alias>): config.<path>: unknown field``."""
    if kind not in STEP_LISTS:
        return []
    where, keys = STEP_LISTS[kind]
    steps: Any = body
    for key in keys:
        steps = steps.get(key) if isinstance(steps, dict) else None
    if not isinstance(steps, list):
        return []
    errors = []
    for n, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("uses"), str):
            continue
        alias = step.get("as") or f"step-{n + 1}"
        for problem in unknown_fields(step["uses"], step.get("config")):
            errors.append(f"{where}[{n}] ({alias}): {problem}")
    return errors
