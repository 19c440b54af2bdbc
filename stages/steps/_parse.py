"""Shared by json-parse, yaml-parse and toml-parse: each output is an expr-lang expression
evaluated with the parsed document as its environment (Kargo: ``expr.Run(program, data)``), so
``fromExpression: image.tag`` reads the document's ``image.tag``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kargo.expressions import ExpressionError, evaluate

from .base import StepError, StepModel


class ParseOutput(StepModel):
    name: str = Field(min_length=1)
    fromExpression: str = Field(min_length=1)


class ParseConfig(StepModel):
    path: str = Field(min_length=1)
    outputs: list[ParseOutput] = Field(min_length=1)


def extract(data: Any, outputs: list[ParseOutput]) -> dict[str, Any]:
    env = data if isinstance(data, dict) else {}
    results: dict[str, Any] = {}
    for output in outputs:
        try:
            results[output.name] = evaluate(output.fromExpression, env)
        except ExpressionError as exc:
            raise StepError(
                f"failed to extract outputs: error evaluating expression "
                f"{output.fromExpression!r}: {exc}"
            ) from None
    return results
