"""git-clone: clone a remote repository once and check out one or more refs as
separate working trees.

Like Kargo (pkg/promotion/runner/builtin/git_cloner.go), the repository is
cloned bare into a hidden directory inside the work dir and every checkout is a
``git worktree`` of that clone, so all checkouts share one object store and a
later git-push from any of them talks to the same remote.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from kargo import runner
from kargo.redaction import redact
from kargo.remotes import parse_remote
from projects.repos import RepoNotAllowed, check_repo_url

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
)

# Directory (inside the work dir) holding the bare clones.
CLONES_DIR = ".git-clones"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class Author(StepModel):
    name: str = Field(min_length=1)
    email: str
    signing_key: str | None = Field(None, alias="signingKey")

    @model_validator(mode="after")
    def _email_format(self):
        if not _EMAIL.match(self.email):
            raise ValueError(f"author.email {self.email!r} is not an email address")
        return self


class Checkout(StepModel):
    branch: str | None = None
    commit: str | None = None
    tag: str | None = None
    create: bool = False
    path: str = Field(min_length=1)
    as_: str | None = Field(None, alias="as")
    sparse: list[str] | None = Field(None, min_length=1)

    _ref_names = field_validator("branch", "commit", "tag")(git_ref_name)

    @model_validator(mode="after")
    def _one_ref(self):
        given = [name for name in ("branch", "commit", "tag") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"{', '.join(given)} are mutually exclusive")
        for pattern in self.sparse or []:
            if not pattern:
                raise ValueError("sparse entries must not be empty")
        return self


class GitCloneConfig(StepModel):
    repo_url: str = Field(alias="repoURL", min_length=1)
    insecure_skip_tls_verify: bool = Field(False, alias="insecureSkipTLSVerify")
    # Accepted for compatibility. Kargo itself currently ignores blobless (its
    # partial-clone filter is disabled); we always make a full clone too.
    blobless: bool = False
    recurse_submodules: bool = Field(False, alias="recurseSubmodules")
    author: Author | None = None
    checkout: list[Checkout] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_aliases(self):
        seen: set[str] = set()
        for i, checkout in enumerate(self.checkout):
            if checkout.as_:
                if checkout.as_ in seen:
                    raise ValueError(f"duplicate checkout alias {checkout.as_!r} at checkout[{i}]")
                seen.add(checkout.as_)
        return self


def _validate_sparse(patterns: list[str]) -> None:
    # Same rules as Kargo (cone mode): relative directory paths, no globs.
    for pattern in patterns:
        if pattern.startswith("/") or pattern.startswith(".."):
            raise StepError(
                f"sparse checkout pattern {pattern!r} must be relative to the repository"
            )
        if any(c in pattern for c in "*?["):
            raise StepError(f"sparse checkout pattern {pattern!r} cannot contain glob characters")


@register
class GitClone(Step):
    name = "git-clone"
    Config = GitCloneConfig

    def run(self, ctx: StepContext, config: GitCloneConfig) -> StepResult:
        work_dir = ctx.path(".")
        # Resolve (and so vet) every target path before touching the network.
        targets = []
        for checkout in config.checkout:
            target = ctx.path(checkout.path)
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise StepError(f"checkout path {checkout.path} already exists and is not empty")
            if checkout.sparse:
                _validate_sparse(checkout.sparse)
            targets.append(target)

        repo = self._clone(ctx, work_dir, config)

        commits: dict[str, str] = {}
        for checkout, target in zip(config.checkout, targets, strict=True):
            self._add_worktree(ctx, repo, checkout, target)
            if checkout.sparse:
                git(ctx, target, "sparse-checkout", "set", "--cone", "--", *checkout.sparse)
            if config.recurse_submodules:
                update_submodules(ctx, target)
            commits[checkout.as_ or checkout.path] = git(ctx, target, "rev-parse", "HEAD")
        return StepResult(outputs={"commits": commits})

    def _clone(self, ctx: StepContext, work_dir: Path, config: GitCloneConfig) -> Path:
        clones = work_dir / CLONES_DIR
        clones.mkdir(exist_ok=True)
        # A fresh directory per clone: two git-clone steps may clone one repo.
        repo = Path(tempfile.mkdtemp(prefix="repo-", dir=clones))
        ssl = ["-c", "http.sslVerify=false"] if config.insecure_skip_tls_verify else []
        # "--" stops a repoURL that starts with "-" from being read as an option.
        git(ctx, clones, *ssl, "clone", "--bare", "--", config.repo_url, str(repo), timeout=600)

        author = config.author.model_dump() if config.author else ctx.git_author
        # Identity lives in the clone's own config (shared by all its worktrees)
        # because the machine may have no global git identity.
        git(ctx, repo, "config", "user.name", author["name"])
        git(ctx, repo, "config", "user.email", author["email"])
        # A global commit.gpgsign=true would make every commit fail without a key.
        git(ctx, repo, "config", "commit.gpgsign", "false")
        if config.insecure_skip_tls_verify:
            git(ctx, repo, "config", "http.sslVerify", "false")
        return repo

    def _add_worktree(self, ctx: StepContext, repo: Path, checkout: Checkout, target: Path) -> None:
        if checkout.branch:
            self._ensure_branch(ctx, repo, checkout.branch, checkout.create)
            git(ctx, repo, "worktree", "add", "--", str(target), checkout.branch)
        elif checkout.commit or checkout.tag:
            ref = checkout.commit or f"refs/tags/{checkout.tag}"
            if not git(
                ctx, repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
            ):
                kind = "commit" if checkout.commit else "tag"
                raise StepError(
                    f"{kind} {checkout.commit or checkout.tag} not found in {_origin_url(ctx, repo)}"
                )
            git(ctx, repo, "worktree", "add", "--detach", "--", str(target), ref)
        else:
            # No ref: the remote's default branch (HEAD of the bare clone).
            default = git(ctx, repo, "symbolic-ref", "--short", "HEAD")
            git(ctx, repo, "worktree", "add", "--", str(target), default)

    def _ensure_branch(self, ctx: StepContext, repo: Path, branch: str, create: bool) -> None:
        """A bare clone holds every remote branch as a local branch, so a missing
        local ref means the branch is missing on the remote."""
        if git(ctx, repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False):
            return
        if not create:
            raise StepError(
                f"remote branch {branch!r} of repo {_origin_url(ctx, repo)} does not exist; "
                "set create=true if you'd like a non-existent remote branch to be "
                "automatically created at checkout"
            )
        # Kargo creates the branch as an orphan holding one empty commit and
        # pushes it right away, so the branch exists on the remote from here on.
        empty_tree = git(ctx, repo, "mktree", input="")
        sha = git(ctx, repo, "commit-tree", empty_tree, "-m", "Initial commit")
        git(ctx, repo, "update-ref", f"refs/heads/{branch}", sha)
        ref = f"refs/heads/{branch}"
        pushed = run_command(
            ctx, ["git", "push", "origin", f"{ref}:{ref}"], cwd=repo, timeout=300, check=False
        )
        if pushed.returncode == 0:
            return
        # Created by someone else since the clone (another run of this very promotion, taken
        # for dead but still going): the branch exists now, which is all this asked for.
        if git(ctx, repo, "ls-remote", "--heads", "origin", ref, timeout=120):
            git(ctx, repo, "fetch", "--quiet", "origin", f"+{ref}:{ref}", timeout=300)
            return
        detail = runner.tail(pushed.stderr or pushed.stdout)
        raise StepError(f"creating branch {branch!r} on the remote failed: {detail}")


def update_submodules(ctx: StepContext, tree: Path) -> None:
    """`git submodule update --init --recursive`, one level at a time, so that every submodule
    URL (as git resolves it, relative ones included) passes the repository policy before git
    fetches anything, and git may use only the transports of the URLs that passed."""
    pending = [tree]
    while pending:
        top = ctx.path(pending.pop())
        if not (top / ".gitmodules").is_file():
            continue
        # `init` fetches nothing: it copies each submodule's resolved URL into the config.
        git(ctx, top, "submodule", "init")
        listed = git(ctx, top, "config", "--get-regexp", r"^submodule\..*\.url$", check=False)
        transports = set()
        for line in listed.splitlines():
            key, _, url = line.partition(" ")
            name = key.removeprefix("submodule.").removesuffix(".url")
            try:
                check_repo_url(url)
            except RepoNotAllowed as exc:
                raise StepError(f"submodule {name}: {exc}") from None
            transports.add(parse_remote(url).scheme)
        # GIT_ALLOW_PROTOCOL replaces git's own protocol.*.allow rules: name exactly these.
        allowed = ":".join(sorted(transports)) or "https"
        git(ctx, top, "submodule", "update", timeout=600, env={"GIT_ALLOW_PROTOCOL": allowed})
        paths = git(
            ctx, top, "config", "-f", ".gitmodules", "--get-regexp", r"\.path$", check=False
        )
        pending += [top / line.partition(" ")[2] for line in paths.splitlines()]


def _origin_url(ctx: StepContext, repo: Path) -> str:
    return redact(git(ctx, repo, "config", "--get", "remote.origin.url", check=False))
