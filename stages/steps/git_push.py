"""git-push: push a working tree's HEAD to a remote branch (or push a tag).

Follows Kargo (pkg/promotion/runner/builtin/git_pusher.go, git/work_tree.go): HEAD is pushed
to ``HEAD:<branch>``; a rejection because the remote moved on (another promotion pushed since
the clone, or in between) is met with ``git pull --rebase`` and another push, retried up to
``maxAttempts`` times (default 10) with growing delays. A rebase conflict needs a human, so it
fails the step instead. Kargo pulls and rebases before every push; here the first push goes out
without it, because rebasing onto a branch that has not moved since the clone changes nothing,
and the push itself says when it has moved: one git command where Kargo's way takes three
(ls-remote, pull --rebase, push).

Re-runnable: a push that already landed is recognised and not made again. When the remote
branch is already at HEAD (the push finds it "up to date"), or holds HEAD's change on the same
base (the rebase drops a commit whose change is upstream), the step succeeds without pushing
anything and reports the remote's commit. A forced push (which replaces history) at first only
creates the branch; when it exists already and holds a commit with HEAD's tree and parents (the
same change on the same base, as an earlier run of this promotion made it), it is left alone. A
promotion resumed after its worker stopped re-runs its steps, so this is what keeps a resumed
push from landing twice.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
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

# Kargo's reasons for "the remote branch has commits we don't have", as `git push --porcelain`
# reports a ref it did not update: "!<TAB><from>:<to><TAB>[rejected] (<reason>)".
_NON_FAST_FORWARD = re.compile(
    r"(?m)^!\t[^\t]*\t\[(?:remote )?rejected] \((?:non-fast-forward|fetch first|"
    r"cannot lock ref.*|incorrect old value provided)\)$"
)
# A --force-with-lease push refused because the ref is not where the lease expects it.
_STALE = re.compile(r"(?m)^!\t[^\t]*\t\[rejected] \(stale info\)$")


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


@dataclass
class Pushed:
    commit: str  # the commit the remote branch (or tag) is at now
    url: str  # the remote's URL, as git reports where it pushed to
    landed: bool = False  # the remote held the change already: nothing was pushed


@register
class GitPush(Step):
    name = "git-push"
    Config = GitPushConfig

    # Kargo's backoff: 1s, x1.5 per attempt, capped at 30s, with jitter.
    retry_base_delay = 1.0
    retry_max_delay = 30.0

    def run(self, ctx: StepContext, config: GitPushConfig) -> StepResult:
        tree = worktree_path(ctx, config.path)
        # HEAD's commit and the branch it is on ("HEAD" when detached), in one command.
        head, head_ref = git(
            ctx, tree, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD"
        ).splitlines()
        current = head_ref.removeprefix("refs/heads/") if head_ref.startswith("refs/heads/") else ""
        force = config.force
        if config.generate_target_branch:
            target = f"kargo/promotion/{ctx.promotion}"
            # The name is unique to this promotion; if it exists, this very
            # promotion pushed it on an earlier run, so overwriting is safe.
            force = True
        else:
            target = config.target_branch or current

        if config.tag:
            pushed = self._push_tag(ctx, tree, head, config.tag)
        elif not target:
            raise StepError("HEAD is detached; set targetBranch to choose the branch to push to")
        elif force:
            pushed = self._push_forced(ctx, tree, head, target)
        else:
            pushed = self._push_branch(ctx, tree, head, target, config.max_attempts or 10)
            if isinstance(pushed, StepResult):
                return pushed

        outputs = {"commit": pushed.commit}
        if target:
            outputs["branch"] = target
        url = commit_url(pushed.url, pushed.commit, config.provider)
        if url:
            outputs["commitURL"] = url
        message = ""
        if pushed.landed:
            message = (
                f"nothing to push: remote branch {target!r} is already at {pushed.commit[:12]}, "
                "which holds this commit's content"
            )
        return StepResult(outputs=outputs, message=message)

    def _push_branch(
        self, ctx: StepContext, tree: Path, head: str, branch: str, max_attempts: int
    ) -> Pushed | StepResult:
        """Push HEAD to `branch`, rebasing onto it and pushing again while the push is rejected
        because the branch moved on. Returns what was pushed, or a Failed result."""
        refspec = f"HEAD:refs/heads/{branch}"
        # Attempt 1 without Kargo's rebase first: it is a no-op while the branch is where the
        # clone found it, and this push says when it is not.
        proc = _push(ctx, tree, refspec)
        for attempt in range(1, max_attempts + 1):
            if proc.returncode == 0 or not _NON_FAST_FORWARD.search(proc.stdout):
                break
            if attempt > 1:
                # Someone else pushed between our rebase and our push: wait a little.
                time.sleep(self._delay(attempt - 1))
            try:
                self._integrate(ctx, tree, branch)
            except RebaseConflict as exc:
                return StepResult(status="Failed", message=str(exc))
            head = git(ctx, tree, "rev-parse", "HEAD")
            proc = _push(ctx, tree, refspec)
        if proc.returncode != 0:
            reason = (
                f"the remote branch kept moving ({max_attempts} attempts)"
                if _NON_FAST_FORWARD.search(proc.stdout)
                else "push failed"
            )
            raise StepError(f"error pushing to branch {branch!r}: {reason}: {_detail(proc)}")
        # "Up to date": the branch is at HEAD already (pushed by an earlier run of this
        # promotion, or HEAD is what the rebase found there once it dropped our commit, whose
        # change the branch already held).
        return Pushed(head, _pushed_to(ctx, tree, proc), landed=_ref_flag(proc) == "=")

    def _push_forced(self, ctx: StepContext, tree: Path, head: str, branch: str) -> Pushed:
        """Push HEAD to `branch`, replacing what it holds, unless it holds this change already."""
        ref = f"refs/heads/{branch}"
        # First only create the branch (a lease expecting no ref): the usual case for a branch
        # named after the promotion, and one command. An existing one is compared first.
        proc = _push(ctx, tree, f"HEAD:{ref}", f"--force-with-lease={ref}:")
        if proc.returncode == 0:
            return Pushed(head, _pushed_to(ctx, tree, proc), landed=_ref_flag(proc) == "=")
        if not _STALE.search(proc.stdout):
            raise StepError(f"error pushing to branch {branch!r}: push failed: {_detail(proc)}")
        landed = self._same_change(ctx, tree, ref)
        if landed:
            return Pushed(landed, _pushed_to(ctx, tree, proc), landed=True)
        proc = _push(ctx, tree, f"HEAD:{ref}", "--force")
        if proc.returncode != 0:
            raise StepError(f"error pushing to branch {branch!r}: push failed: {_detail(proc)}")
        return Pushed(head, _pushed_to(ctx, tree, proc))

    def _same_change(self, ctx: StepContext, tree: Path, ref: str) -> str | None:
        """The remote ref's commit when it has HEAD's tree and parents (the same change on the
        same base: what an earlier run of this promotion pushed); None when it differs."""
        if git_proc(ctx, tree, "fetch", "--quiet", "origin", ref).returncode != 0:
            return None  # deleted since: nothing there to keep
        # "<commit> <tree> <parents...>" per commit, in the order given; one line if they are one.
        shown = git(
            ctx,
            tree,
            "log",
            "--no-walk=unsorted",
            "--no-show-signature",
            "--format=%H %T %P",
            "FETCH_HEAD",
            "HEAD",
        ).splitlines()
        remote, local = shown[0].split(), shown[-1].split()
        return remote[0] if remote[1:] == local[1:] else None

    def _integrate(self, ctx: StepContext, tree: Path, branch: str) -> None:
        """Rebase local commits onto the remote branch (Kargo's `git pull --rebase`)."""
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

    def _push_tag(self, ctx: StepContext, tree: Path, head: str, tag: str) -> Pushed:
        # Kargo pushes a tag made by its git-tag step; without that step here,
        # a missing tag is created (annotated, Kargo's default message) at HEAD.
        if not git(ctx, tree, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}", check=False):
            git(ctx, tree, "tag", "-a", tag, "-m", "Created by Kargo")
        proc = _push(ctx, tree, f"refs/tags/{tag}:refs/tags/{tag}")
        if proc.returncode != 0:
            raise StepError(f"error pushing tag {tag!r}: {_detail(proc)}")
        return Pushed(head, _pushed_to(ctx, tree, proc))

    def _delay(self, attempt: int) -> float:
        delay = min(self.retry_max_delay, self.retry_base_delay * 1.5 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.5)


def _push(ctx: StepContext, tree: Path, refspec: str, *options: str):
    """`git push --porcelain`: one line per ref saying what became of it, on stdout."""
    return git_proc(ctx, tree, "push", "--porcelain", *options, "origin", refspec)


def _ref_flag(proc) -> str:
    """The pushed ref's status in `git push --porcelain` output ("<flag><TAB><from>:<to><TAB>...):
    " " fast-forward, "+" forced, "*" new, "=" up to date, "!" rejected."""
    for line in proc.stdout.splitlines():
        if line[1:2] == "\t":
            return line[0]
    return ""


def _pushed_to(ctx: StepContext, tree: Path, proc) -> str:
    """The remote's URL, from the "To <url>" line that opens a porcelain push's report (git
    leaves credentials out of it), or else from the config."""
    for line in proc.stdout.splitlines():
        if line.startswith("To "):
            return line.removeprefix("To ")
    return git(ctx, tree, "remote", "get-url", "origin")


def _detail(proc) -> str:
    """What a failed push said, without git's generic advice."""
    lines = [line for line in proc.stdout.splitlines() if line != "Done"]
    lines += [line for line in proc.stderr.splitlines() if not line.startswith("hint:")]
    return tail("\n".join(lines)) or f"exit code {proc.returncode}"


def git_proc(ctx: StepContext, cwd: Path, *args: str, timeout: float = 300):
    """git without raising on failure: the caller inspects the output."""
    return run_command(ctx, ["git", *args], cwd=cwd, timeout=timeout, check=False)


def _rebase_in_progress(ctx: StepContext, tree: Path) -> bool:
    for name in ("rebase-merge", "rebase-apply"):
        marker = Path(git(ctx, tree, "rev-parse", "--git-path", name))
        if not marker.is_absolute():
            marker = tree / marker
        if marker.exists():
            return True
    return False
