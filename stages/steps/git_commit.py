"""git-commit: stage every change in a working tree and commit it.

Output ``commit`` is the HEAD sha. When there is nothing to commit the step
still succeeds and reports the unchanged HEAD (current Kargo marks that case
Skipped; this engine's step contract is Succeeded/Failed, so it is Succeeded
with a message).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from kargo.runner import tail

from .base import (
    Step,
    StepContext,
    StepError,
    StepModel,
    StepResult,
    git,
    register,
    run_command,
    worktree_path,
)
from .git_clone import Author


class GitCommitConfig(StepModel):
    path: str = Field(min_length=1)
    message: str | None = Field(None, min_length=1)
    # Older Kargo field (still in docs and many templates): build the message
    # from the ``commitMessage`` outputs of the named earlier steps.
    message_from_steps: list[str] | None = Field(None, alias="messageFromSteps")
    # Deprecated in Kargo (configure authorship on git-clone), still accepted.
    author: Author | None = None

    @model_validator(mode="after")
    def _message_source(self):
        if self.message and self.message_from_steps:
            raise ValueError("message and messageFromSteps are mutually exclusive")
        if not self.message and not self.message_from_steps:
            raise ValueError("message is required (or the older messageFromSteps)")
        return self


def message_from_steps(ctx: StepContext, aliases: list[str]) -> str:
    """Older Kargo's builder (git_commiter.go while messageFromSteps existed):
    steps that left no ``commitMessage`` are skipped; one fragment is used as
    is; several become a bulleted list."""
    parts = []
    for alias in aliases:
        output = ctx.outputs.get(alias)
        if output is None:
            continue
        if not isinstance(output, dict):
            raise StepError(f"output from step with alias {alias!r} is not an object")
        part = output.get("commitMessage")
        if part is None:
            continue
        if not isinstance(part, str):
            raise StepError(
                f"commitMessage in output from step with alias {alias!r} is not a string"
            )
        parts.append(part)
    if not parts:
        return "Kargo made some changes"
    if len(parts) == 1:
        return parts[0]
    return "Kargo applied multiple changes\n\nIncluding:\n" + "".join(f"\n  * {p}" for p in parts)


@register
class GitCommit(Step):
    name = "git-commit"
    Config = GitCommitConfig

    def run(self, ctx: StepContext, config: GitCommitConfig) -> StepResult:
        tree = worktree_path(ctx, config.path)
        message = config.message or message_from_steps(ctx, config.message_from_steps or [])
        identity = []
        if config.author:
            # Per-commit override of the identity git-clone stored in the repo.
            identity = [
                "-c",
                f"user.name={config.author.name}",
                "-c",
                f"user.email={config.author.email}",
            ]
        git(ctx, tree, "add", "--all", ".")
        # No separate check for staged changes: `git commit` makes that check itself, and says
        # "nothing to commit" (exit code 1) when there are none.
        committed = run_command(
            ctx,
            ["git", *identity, "commit", "--no-verify", "--quiet", "-m", message],
            cwd=tree,
            check=False,
        )
        unchanged = committed.returncode == 1 and "nothing to commit" in committed.stdout
        if committed.returncode != 0 and not unchanged:
            detail = (
                tail(committed.stderr or committed.stdout) or f"exit code {committed.returncode}"
            )
            raise StepError(f"git commit failed: {detail}")
        head = git(ctx, tree, "rev-parse", "HEAD")
        if unchanged:
            return StepResult(outputs={"commit": head}, message="nothing to commit; HEAD unchanged")
        return StepResult(outputs={"commit": head})
