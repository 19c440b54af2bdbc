"""delete: remove files or directories (literal paths or doublestar globs) in the work directory.

As Kargo's: ``path`` and ``paths`` may both be given (``path`` first); a path whose parent does
not exist, or a glob matching nothing, is skipped unless ``strict``; a symlink is removed itself,
never what it points to, and a path whose parent resolves outside the work directory is refused.
Unlike Kargo, the work directory itself cannot be deleted (``.`` or a glob matching it).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from wcmatch import glob

from ._files import remove
from .base import Step, StepContext, StepError, StepModel, StepResult, register


class DeleteConfig(StepModel):
    path: str | None = Field(default=None, min_length=1)
    paths: list[str] | None = Field(default=None, min_length=1)
    pathsAreGlobs: bool = False
    strict: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> DeleteConfig:
        # The schema's oneOf: exactly one of path/paths is required.
        if (self.path is None) == (self.paths is None):
            raise ValueError("exactly one of path or paths must be set")
        for item in self.paths or []:
            if not item:
                raise ValueError("paths: entries must not be empty")
        return self


def _resolve(ctx: StepContext, rel: str) -> Path | None:
    """The path to delete with its parent's links resolved (the last part is not followed), or
    None when it does not exist."""
    parent = ctx.path(os.path.dirname(rel) or ".")
    name = os.path.basename(os.path.normpath(rel))
    target = parent / name if name not in ("", ".") else parent
    if name == "..":
        target = ctx.path(rel)
    if target != ctx.guard.root and not target.is_relative_to(ctx.guard.root):
        raise StepError(f"path {rel!r} escapes the work directory")
    if not os.path.lexists(target):
        return None
    if target == ctx.guard.root:
        raise StepError(f"refusing to delete the work directory itself ({rel!r})")
    return target


@register
class Delete(Step):
    name = "delete"
    Config = DeleteConfig

    def run(self, ctx: StepContext, config: DeleteConfig) -> StepResult:
        patterns = ([config.path] if config.path else []) + (config.paths or [])
        targets: list[Path] = []
        for pattern in patterns:
            if config.pathsAreGlobs:
                glob_pattern = pattern.removeprefix("./")
                if os.path.isabs(glob_pattern) or ".." in glob_pattern.split("/"):
                    raise StepError(f"glob {pattern!r} escapes the work directory")
                matches = glob.glob(
                    glob_pattern, root_dir=ctx.guard.root, flags=glob.GLOBSTAR | glob.DOTGLOB
                )
                if not matches and config.strict:
                    raise StepError(f"no paths matched pattern {pattern!r}")
                found = [_resolve(ctx, match) for match in sorted(matches)]
            else:
                found = [_resolve(ctx, pattern)]
                if found[0] is None and config.strict:
                    raise StepError(f"path {pattern!r} does not exist")
            targets.extend(t for t in found if t is not None and t not in targets)
        for target in targets:
            if os.path.lexists(target):  # may be gone with a directory deleted before it
                remove(target)
        return StepResult()
