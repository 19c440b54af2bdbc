"""yaml-merge: merge YAML files, later files over earlier ones, into ``outFile``.

As Kargo's (kyaml merge2): mappings merge key by key, recursively; a later value replaces an
earlier one; a key set to null in a later file removes it; lists are replaced whole. A missing
input file is an error unless ``ignoreMissingFiles``; an empty input is skipped; with no input
at all an empty file is written. Output: ``commitMessage``.
Differs from Kargo: comments of the inputs are not kept, and lists of mappings keyed by
``name`` are replaced rather than merged element by element.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import Field

from kargo import yamlio

from .base import Step, StepContext, StepError, StepModel, StepResult, register


class YAMLMergeConfig(StepModel):
    inFiles: list[str] = Field(min_length=1)
    outFile: str = Field(min_length=1)
    ignoreMissingFiles: bool = False


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = merge(base.get(key), value)
        return merged
    return patch


def commit_message(paths: list[str], out: str) -> str:
    if not paths:
        return ""
    if len(paths) == 1:
        return f"Wrote {paths[0]} to {out}"
    return f"Merged {len(paths)} YAML files to {out}" + "".join(f"\n- {p}" for p in paths)


@register
class YAMLMerge(Step):
    name = "yaml-merge"
    Config = YAMLMergeConfig

    def run(self, ctx: StepContext, config: YAMLMergeConfig) -> StepResult:
        used: list[str] = []
        result: Any = None
        for rel in config.inFiles:
            path = ctx.path(rel)
            if not path.exists():
                if config.ignoreMissingFiles:
                    continue
                raise StepError(f"input file {rel!r} not found")
            used.append(rel)
            try:
                data = yamlio.load(ctx.read_text(path))
            except ValueError as exc:
                raise StepError(f"error reading input file {rel}: {exc}") from None
            if data is None:
                continue
            result = data if result is None else merge(result, data)
        text = "" if result is None else yaml.safe_dump(result, sort_keys=False, allow_unicode=True)
        ctx.write_text(config.outFile, text)
        message = commit_message(used, config.outFile)
        return StepResult(outputs={"commitMessage": message} if message else {})
