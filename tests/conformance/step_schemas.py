"""Kargo's JSON schemas as the oracle: where they are, and what they and the step config models
accept. Shared by the conformance tests (the CRDs and each step's config)."""

import json
import os
from functools import cache
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from stages.steps import StepError, get_step


def _schemas_dir() -> Path | None:
    candidate = Path(__file__).resolve().parents[3] / "shared" / "kargo-schemas"
    if candidate.is_dir():
        return candidate
    from_env = os.environ.get("KARGO_SCHEMAS_DIR")
    if from_env and Path(from_env).is_dir():
        return Path(from_env)
    return None


SCHEMAS_DIR = _schemas_dir()

needs_schemas = pytest.mark.skipif(
    SCHEMAS_DIR is None,
    reason="Kargo schemas not found: expected ../shared/kargo-schemas next to the project "
    "or a directory in KARGO_SCHEMAS_DIR; the conformance oracle cannot run without them",
)


@cache
def _step_validator(uses: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / "steps" / f"{uses}-config.json").read_text())
    return Draft202012Validator(schema)


def schema_accepts(uses: str, config: dict) -> bool:
    return _step_validator(uses).is_valid(config)


def model_accepts(uses: str, config: dict) -> bool:
    try:
        get_step(uses).validate(config)
    except StepError:
        return False
    return True
