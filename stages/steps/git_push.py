"""git-push: push a working tree's HEAD to a remote branch (or push a tag).

Follows Kargo (pkg/promotion/runner/builtin/git_pusher.go, git/work_tree.go):
every attempt first rebases onto the remote branch when it exists, then pushes
``HEAD:<branch>``; a rejection because the remote moved on (another promotion
pushed in between) is retried up to ``maxAttempts`` times (default 10) with
growing delays. A rebase conflict needs a human, so it fails the step instead.

Re-runnable: a push that already landed is recognised and not made again. When
the remote branch is already at HEAD, or at a commit with HEAD's tree (for a
forced push: also HEAD's parents, i.e. the same change on the same base, as an
earlier run of this promotion made it), the step succeeds without pushing and
reports the remote's commit. A promotion resumed after its worker stopped
re-runs its steps, so this is what keeps a resumed push from landing twice.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from kargo.runner import tail

from .base import (
    Step,
    StepContext,
    StepError,
    StepModel,
    StepResult,
    git,
    git_ref_name,
    register,
    run_command,
    worktree_path,
)

# Kargo's regex for "the remote branch has commits we don't have".
_NON_FAST_FORWARD = re.compile(
    r"(?m)^\s*!\s+\[(?:remote )?rejected].+\((?:non-fast-forward|fetch first|"
    r"cannot lock ref.*|incorrect old value provided)\)\s*$"
)


class GitPushConfig(StepModel):
    path: str = Field(min_length=1)
    target_branch: str | None = Field(None, alias="targetBranch")
    # Older name of targetBranch, still used by many templates.
    branch: str | None = None
    generate_target_branch: bool = Field(False, alias="generateTargetBranch")
    force: bool = False
    max_attempts: int | None = Field(None, alias="maxAttempts", ge=1, le=2**31 - 1)
    tag: str | None = None
    provider: Literal["azure", "bitbucket", "gitea", "github", "gitlab"] | None = None

    _ref_names = field_validator("target_branch", "branch", "tag")(git_ref_name)

    @model_validator(mode="after")
    def _exclusive(self):
        if self.branch:
            if self.target_branch and self.target_branch != self.branch:
                raise ValueError(
                    "branch and targetBranch disagree (branch is the older name of targetBranch)"
                )
            self.target_branch = self.branch
        if self.generate_target_branch and (self.target_branch or self.tag):
            raise ValueError("generateTargetBranch is mutually exclusive with targetBranch and tag")
        if self.target_branch and self.tag:
            raise ValueError("targetBranch and tag are mutually exclusive")
        if self.tag and self.force:
            raise ValueError("tag and force are mutually exclusive")
        return self


def commit_url(repo_url: str, sha: str, provider: str | None = None) -> str | None:
    """Web URL of a commit, as Kargo's git providers build it; None when the
    host is unknown (e.g. file:// remotes)."""
    url = repo_url.strip()
    scp = re.match(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$", url)
    if scp and "://" not in url:
        host, path = scp.group(1), "/" + scp.group(2)
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git"):
            return None
        host, path = parts.hostname or "", parts.path
    path = path.rstrip("/").removesuffix(".git")
    if not host or not path:
        return None
    if provider is None:
        for name, marker in (
            ("github", "github"),
            ("gitlab", "gitlab"),
            ("bitbucket", "bitbucket"),
            ("azure", "dev.azure.com"),
            ("gitea", "gitea"),
        ):
            if marker in host:
                provider = name
                break
    if provider == "github" or provider == "gitea":
        return f"https://{host}{path}/commit/{sha}"
    if provider == "gitlab":
        return f"https://{host}{path}/-/commit/{sha}"
    if provider == "bitbucket":
        return f"https://{host}{path}/commits/{sha}"
    if provider == "azure":
        return f"https://dev.azure.com{path.removeprefix('/v3')}/commit/{sha}"
    return None


class RebaseConflict(Exception):
    pass


@register
class GitPush(Step):
    name = "git-push"
    Config = GitPushConfig

    # Kargo's backoff: 1s, x1.5 per attempt, capped at 30s, with jitter.
    retry_base_delay = 1.0
    retry_max_delay = 30.0

    def run(self, ctx: StepContext, config: GitPushConfig) -> StepResult:
        tree = worktree_path(ctx, config.path)
        current = git(ctx, tree, "branch", "--show-current")
        force = config.force
        if config.generate_target_branch:
            target = f"kargo/promotion/{ctx.promotion}"
            # The name is unique to this promotion; if it exists, this very
            # promotion pushed it on an earlier run, so overwriting is safe.
            force = True
        else:
            target = config.target_branch or current

        landed = None
        if config.tag:
            self._push_tag(ctx, tree, config.tag)
        else:
            if not target:
                raise StepError(
                    "HEAD is detached; set targetBranch to choose the branch to push to"
                )
            pushed = self._push_branch(ctx, tree, target, force, config.max_attempts or 10)
            if isinstance(pushed, StepResult):
                return pushed
            landed = pushed

        sha = landed or git(ctx, tree, "rev-parse", "HEAD")
        outputs = {"commit": sha}
        if target:
            outputs["branch"] = target
        remote = git(ctx, tree, "remote", "get-url", "origin")
        url = commit_url(remote, sha, config.provider)
        if url:
            outputs["commitURL"] = url
        message = ""
        if landed:
            message = (
                f"nothing to push: remote branch {target!r} is already at {landed[:12]}, "
                "which holds this commit's content"
            )
        return StepResult(outputs=outputs, message=message)

    def _push_branch(
        self, ctx: StepContext, tree: Path, branch: str, force: bool, max_attempts: int
    ) -> StepResult | str | None:
        """Push HEAD to `branch`. Returns None once pushed, the remote's commit when the push had
        already landed (nothing pushed), or a Failed result."""
        refspec = f"HEAD:refs/heads/{branch}"
        for attempt in range(1, max_attempts + 1):
            if not force:
                try:
                    self._integrate(ctx, tree, branch)
                except RebaseConflict as exc:
                    return StepResult(status="Failed", message=str(exc))
            landed = self._landed(ctx, tree, branch, force)
            if landed:
                return landed
            args = ["push", "origin", refspec] + (["--force"] if force else [])
            proc = git_proc(ctx, tree, *args)
            if proc.returncode == 0:
                return None
            output = proc.stderr + proc.stdout
            rejected = bool(_NON_FAST_FORWARD.search(output))
            if not rejected or attempt == max_attempts:
                reason = (
                    f"the remote branch kept moving ({attempt} attempts)"
                    if rejected
                    else "push failed"
                )
                raise StepError(f"error pushing to branch {branch!r}: {reason}: {tail(output)}")
            # Someone else pushed first: wait a little, then rebase and retry.
            time.sleep(self._delay(attempt))
        return None

    def _landed(self, ctx: StepContext, tree: Path, branch: str, force: bool) -> str | None:
        """The remote branch's commit when pushing HEAD to it would change nothing it holds: it
        is HEAD, or has HEAD's tree (and, for a forced push, which replaces history, HEAD's
        parents too). None when there is something to push."""
        listed = git(
            ctx, tree, "ls-remote", "--heads", "origin", f"refs/heads/{branch}", timeout=120
        )
        remote = listed.split()[0] if listed else ""
        if not remote:
            return None
        head = git(ctx, tree, "rev-parse", "HEAD")
        if remote == head:
            return remote
        if git(ctx, tree, "cat-file", "-t", remote, check=False) != "commit":
            # Pushed after this clone was made: fetch it (into no ref) to compare.
            git(ctx, tree, "fetch", "--quiet", "origin", f"refs/heads/{branch}", timeout=300)
        if git(ctx, tree, "cat-file", "-t", remote, check=False) != "commit":
            return None  # moved again while we looked: push, and let the push decide
        if git(ctx, tree, "rev-parse", f"{remote}^{{tree}}") != git(
            ctx, tree, "rev-parse", "HEAD^{tree}"
        ):
            return None
        if force and _parents(ctx, tree, remote) != _parents(ctx, tree, head):
            return None
        return remote

    def _integrate(self, ctx: StepContext, tree: Path, branch: str) -> None:
        """Rebase local commits onto the remote branch, if it exists yet."""
        if not git(
            ctx, tree, "ls-remote", "--heads", "origin", f"refs/heads/{branch}", timeout=120
        ):
            return  # pushing creates the branch
        proc = git_proc(
            ctx, tree, "pull", "--rebase", "--no-autostash", "origin", branch, timeout=300
        )
        if proc.returncode == 0:
            return
        if _rebase_in_progress(ctx, tree):
            git(ctx, tree, "rebase", "--abort", check=False)
            raise RebaseConflict(
                f"merge conflict rebasing onto remote branch {branch!r}; it needs manual resolution"
            )
        raise StepError(f"error pulling and rebasing branch {branch!r}: {tail(proc.stderr)}")

    def _push_tag(self, ctx: StepContext, tree: Path, tag: str) -> None:
        # Kargo pushes a tag made by its git-tag step; without that step here,
        # a missing tag is created (annotated, Kargo's default message) at HEAD.
        if not git(ctx, tree, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}", check=False):
            git(ctx, tree, "tag", "-a", tag, "-m", "Created by Kargo")
        git(ctx, tree, "push", "origin", f"refs/tags/{tag}:refs/tags/{tag}", timeout=300)

    def _delay(self, attempt: int) -> float:
        delay = min(self.retry_max_delay, self.retry_base_delay * 1.5 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.5)


def git_proc(ctx: StepContext, cwd: Path, *args: str, timeout: float = 300):
    """git without raising on failure: the caller inspects the output."""
    return run_command(ctx, ["git", *args], cwd=cwd, timeout=timeout, check=False)


def _parents(ctx: StepContext, tree: Path, commit: str) -> list[str]:
    return git(ctx, tree, "rev-list", "--parents", "-n", "1", commit).split()[1:]


def _rebase_in_progress(ctx: StepContext, tree: Path) -> bool:
    for name in ("rebase-merge", "rebase-apply"):
        marker = Path(git(ctx, tree, "rev-parse", "--git-path", name))
        if not marker.is_absolute():
            marker = tree / marker
        if marker.exists():
            return True
    return False
