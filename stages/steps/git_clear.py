"""git-clear: empty a working tree (everything but ``.git``), typically before
rendering fresh manifests into it so deleted resources disappear too."""

from __future__ import annotations

import shutil

from pydantic import Field

from .base import Step, StepContext, StepModel, StepResult, register, worktree_path


class GitClearConfig(StepModel):
    path: str = Field(min_length=1)


@register
class GitClear(Step):
    name = "git-clear"
    Config = GitClearConfig

    def run(self, ctx: StepContext, config: GitClearConfig) -> StepResult:
        root = worktree_path(ctx, config.path)
        for entry in root.iterdir():
            if entry.name == ".git":
                # In a worktree .git is a file pointing at the shared clone.
                continue
            # Symlinks are unlinked, never followed: a link to a directory
            # elsewhere must not have that directory's contents deleted.
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return StepResult()
