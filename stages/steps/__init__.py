"""Promotion step plug-ins, one module per step.

Every module in this package (except ``base`` and private ``_*`` modules) is
imported on package import; each registers its Step class with ``@register``.
Adding a step is therefore copying one file.
"""

import importlib
import pkgutil

from .base import (
    STEPS,
    Step,
    StepContext,
    StepError,
    StepResult,
    register,
)

__all__ = [
    "STEPS",
    "Step",
    "StepContext",
    "StepError",
    "StepResult",
    "UnknownStepError",
    "get_step",
    "register",
]


class UnknownStepError(StepError):
    """Raised for a ``uses:`` name no step is registered under."""


def get_step(name: str) -> type[Step]:
    try:
        return STEPS[name]
    except KeyError:
        known = ", ".join(sorted(STEPS)) or "(none)"
        raise UnknownStepError(f"unknown step {name!r}; known steps: {known}") from None


def _import_step_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base" or module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}")


_import_step_modules()
