"""file-write: write a string to a file in the work directory.

As Kargo's: the path is relative, never ``..`` out, never into ``.git``, and no symlink may be on
the way; an existing file is replaced only with ``overwrite``; ``permissions`` is an octal mode
(default 0600) without special, executable or world-writable bits.
"""

from __future__ import annotations

import os
import posixpath

from pydantic import Field

from .base import Step, StepContext, StepError, StepModel, StepResult, register

DEFAULT_PERMISSIONS = 0o600


class FileWriteConfig(StepModel):
    path: str = Field(min_length=1)
    contents: str
    permissions: str | None = Field(default=None, pattern=r"^0[0-7]{3}$")
    overwrite: bool = False


def parse_permissions(text: str | None) -> int:
    if not text:
        return DEFAULT_PERMISSIONS
    mode = int(text, 8)
    if mode & 0o111:
        raise StepError(f"permissions {text!r} must not include executable bits")
    if mode & 0o002:
        raise StepError(f"permissions {text!r} must not be world-writable")
    return mode


@register
class FileWrite(Step):
    name = "file-write"
    Config = FileWriteConfig

    def run(self, ctx: StepContext, config: FileWriteConfig) -> StepResult:
        if os.path.isabs(config.path):
            raise StepError(f"path {config.path!r} must be relative")
        clean = posixpath.normpath(config.path)
        if clean == ".." or clean.startswith("../"):
            raise StepError(f"path {config.path!r} attempts to traverse outside the work directory")
        if clean == ".git" or clean.startswith(".git/"):
            raise StepError(f"writing to the .git directory is forbidden: {config.path!r}")
        if clean == ".":
            raise StepError(f"path {config.path!r} names the work directory, not a file")
        mode = parse_permissions(config.permissions)
        target = ctx.path(clean)
        if target != ctx.guard.root / clean:
            raise StepError(f"path {config.path!r} goes through a symlink (symlinks are forbidden)")
        if os.path.lexists(target) and not config.overwrite:
            raise StepError(
                f"file {config.path!r} already exists; set overwrite to true to replace it"
            )
        if target.is_dir():
            raise StepError(f"path {config.path!r} is a directory")
        ctx.write_text(target, config.contents)
        os.chmod(target, mode)  # written with O_NOFOLLOW: target is no link
        return StepResult()
