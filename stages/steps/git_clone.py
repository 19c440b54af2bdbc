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

    @field_validator("branch", "commit", "tag")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # Never in a ref name or commit ID; and the names are looked up one per input line of
        # `git cat-file --batch-check`, where a newline would smuggle in a second name.
        if value and any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise ValueError(f"{value!r} is not a valid git ref name")
        return value

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
        starts = self._resolve(ctx, repo, config)

        commits: dict[str, str] = {}
        for checkout, target, start in zip(config.checkout, targets, starts, strict=True):
            commit = self._add_worktree(ctx, repo, config, checkout, target, start)
            if checkout.sparse:
                git(ctx, target, "sparse-checkout", "set", "--cone", "--", *checkout.sparse)
            if config.recurse_submodules:
                update_submodules(ctx, target)
            commits[checkout.as_ or checkout.path] = commit
        return StepResult(outputs={"commits": commits})

    def _clone(self, ctx: StepContext, work_dir: Path, config: GitCloneConfig) -> Path:
        clones = work_dir / CLONES_DIR
        clones.mkdir(exist_ok=True)
        # A fresh directory per clone: two git-clone steps may clone one repo.
        repo = Path(tempfile.mkdtemp(prefix="repo-", dir=clones))
        author = config.author.model_dump() if config.author else ctx.git_author
        # Identity lives in the clone's own config (shared by all its worktrees) because the
        # machine may have no global git identity. A global commit.gpgsign=true would make every
        # commit fail without a key. `clone --config` writes these into the new repository before
        # it fetches anything (so http.sslVerify also governs the clone itself), in one command.
        settings = [
            f"user.name={author['name']}",
            f"user.email={author['email']}",
            "commit.gpgsign=false",
        ]
        if config.insecure_skip_tls_verify:
            settings.append("http.sslVerify=false")
        options = [arg for setting in settings for arg in ("--config", setting)]
        # "--" stops a repoURL that starts with "-" from being read as an option.
        git(ctx, clones, "clone", "--bare", *options, "--", config.repo_url, str(repo), timeout=600)
        return repo

    def _resolve(self, ctx: StepContext, repo: Path, config: GitCloneConfig) -> list[str | None]:
        """The commit each checkout starts from, None where its branch, commit or tag is missing:
        all checkouts in one `git cat-file --batch-check` (one name per input line)."""
        names = []
        for checkout in config.checkout:
            if checkout.branch:
                name = f"refs/heads/{checkout.branch}"
            elif checkout.tag:
                name = f"refs/tags/{checkout.tag}"
            else:
                # No ref: the remote's default branch (HEAD of the bare clone).
                name = checkout.commit or "HEAD"
            names.append(name)
        listed = git(
            ctx,
            repo,
            "cat-file",
            "--batch-check=%(objectname)",
            input="".join(f"{name}^{{commit}}\n" for name in names),
        ).splitlines()
        # A found name prints its commit ID; a missing one prints "<name> missing".
        return [None if " " in line else line for line in listed]

    def _add_worktree(
        self,
        ctx: StepContext,
        repo: Path,
        config: GitCloneConfig,
        checkout: Checkout,
        target: Path,
        start: str | None,
    ) -> str:
        """Check `checkout` out at `target` as a worktree of the clone; returns its commit."""
        if checkout.branch:
            if start is None:
                created = self._create_branch(ctx, repo, config, checkout)
                if created:
                    # `-b` makes the local branch at the created commit, in the same command.
                    add = ["worktree", "add", "-b", checkout.branch, "--", str(target), created]
                    git(ctx, repo, *add)
                    return created
                # Another run created it first; it was fetched into the local branch.
                start = git(ctx, repo, "rev-parse", f"refs/heads/{checkout.branch}")
            git(ctx, repo, "worktree", "add", "--", str(target), checkout.branch)
        elif checkout.commit or checkout.tag:
            if start is None:
                kind = "commit" if checkout.commit else "tag"
                raise StepError(
                    f"{kind} {checkout.commit or checkout.tag} not found in "
                    f"{redact(config.repo_url)}"
                )
            git(ctx, repo, "worktree", "add", "--detach", "--", str(target), start)
        else:
            if start is None:
                raise StepError(f"the default branch of {redact(config.repo_url)} has no commits")
            default = git(ctx, repo, "symbolic-ref", "--short", "HEAD")
            git(ctx, repo, "worktree", "add", "--", str(target), default)
        return start

    def _create_branch(
        self, ctx: StepContext, repo: Path, config: GitCloneConfig, checkout: Checkout
    ) -> str | None:
        """A bare clone holds every remote branch as a local branch, so a missing local ref means
        the branch is missing on the remote. With `create`, make it as Kargo does: an orphan
        holding one empty commit, pushed right away, so the branch exists on the remote from here
        on. Returns that commit, to become the local branch; None when another run created the
        branch first (it is then fetched into the local branch)."""
        branch = checkout.branch
        if not checkout.create:
            raise StepError(
                f"remote branch {branch!r} of repo {redact(config.repo_url)} does not exist; "
                "set create=true if you'd like a non-existent remote branch to be "
                "automatically created at checkout"
            )
        empty_tree = git(ctx, repo, "mktree", input="")
        sha = git(ctx, repo, "commit-tree", empty_tree, "-m", "Initial commit")
        ref = f"refs/heads/{branch}"
        pushed = run_command(
            ctx, ["git", "push", "origin", f"{sha}:{ref}"], cwd=repo, timeout=300, check=False
        )
        if pushed.returncode == 0:
            return sha
        # Created by someone else since the clone (another run of this very promotion, taken
        # for dead but still going): the branch exists now, which is all this asked for.
        fetched = run_command(
            ctx,
            ["git", "fetch", "--quiet", "origin", f"+{ref}:{ref}"],
            cwd=repo,
            timeout=300,
            check=False,
        )
        if fetched.returncode == 0:
            return None
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
