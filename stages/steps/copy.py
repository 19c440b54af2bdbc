"""copy: copy a file or a directory tree inside the work directory.

As Kargo's (otiai10/copy with Skip/OnSymlink): a directory is copied into ``outPath`` (merged
into it when it exists), symlinks are skipped (never followed), ``.git`` is never copied, and
``ignore`` takes .gitignore patterns relative to ``inPath`` (to its directory for a file).
File modes are kept.
"""

from __future__ import annotations

import os
import shutil

from pydantic import Field

from ._files import IgnoreMatcher
from .base import Step, StepContext, StepError, StepModel, StepResult, register


class CopyConfig(StepModel):
    inPath: str = Field(min_length=1)
    outPath: str = Field(min_length=1)
    ignore: str | None = Field(default=None, min_length=1)


def _copy_file(ctx: StepContext, src, dest) -> None:
    target = ctx.path(dest)
    ctx.guard.mkdir(target.parent)
    if target.is_dir() and not target.is_symlink():
        raise StepError(f"cannot copy a file over the directory {ctx.guard.shown(str(target))!r}")
    if target.is_symlink():
        target.unlink()
    shutil.copyfile(src, target, follow_symlinks=False)
    shutil.copymode(src, target, follow_symlinks=False)


@register
class Copy(Step):
    name = "copy"
    Config = CopyConfig

    def run(self, ctx: StepContext, config: CopyConfig) -> StepResult:
        src = ctx.path(config.inPath)
        dest = ctx.path(config.outPath)
        if not src.exists():
            raise StepError(f"{config.inPath}: no such file or directory")
        matcher = IgnoreMatcher(config.ignore, always=(".git",))
        if not src.is_dir():
            if not matcher.ignored(src.name, False):
                _copy_file(ctx, src, dest)
            return StepResult()
        ctx.guard.mkdir(dest)
        for directory, dirs, files in os.walk(src):  # never descends into linked directories
            here = os.path.relpath(directory, src)
            rel_dir = "" if here == "." else here.replace(os.sep, "/") + "/"
            kept = []
            for name in sorted(dirs):
                entry = os.path.join(directory, name)
                if os.path.islink(entry) or matcher.ignored(rel_dir + name, True):
                    continue
                kept.append(name)
                ctx.guard.mkdir(dest / (rel_dir + name))
            dirs[:] = kept
            for name in sorted(files):
                entry = os.path.join(directory, name)
                if os.path.islink(entry) or matcher.ignored(rel_dir + name, False):
                    continue
                if not os.path.isfile(entry):
                    continue  # fifos, sockets, devices
                _copy_file(ctx, entry, dest / (rel_dir + name))
        return StepResult()
