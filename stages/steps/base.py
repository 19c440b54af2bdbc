"""Shared plumbing for promotion steps: context, result, errors, the Step base
class, the step registry and a subprocess helper.

A promotion runs its steps inside one private working directory. Everything a
step reads or writes must stay inside that directory, so every path taken from a
step's config goes through ``StepContext.path`` (kargo.workdir), every file a step writes
through ``StepContext.write_text``, and every subprocess runs with a ``cwd`` inside it.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pydantic
from pydantic import BaseModel, ConfigDict

from kargo import runner
from kargo.errors import field_errors
from kargo.workdir import PathEscape, WorkDir
from projects.credentials import git_env, has_credentials


class StepError(Exception):
    """A technical error: the promotion engine marks the step Errored."""


def _default_git_author() -> dict:
    return {"name": "Kargo", "email": "no-reply@kargo.io"}


@dataclass
class StepContext:
    work_dir: Path
    project: str
    stage: str
    promotion: str
    actor: str
    # The target FreightCollection: [{name, origin, commits, images, charts}].
    freight: list[dict] = field(default_factory=list)
    # Outputs of earlier steps, keyed by step alias.
    outputs: dict[str, dict] = field(default_factory=dict)
    git_author: dict = field(default_factory=_default_git_author)
    # The project's id, for its stored credentials (projects.credentials); None: none are used.
    project_id: int | None = None

    def __post_init__(self) -> None:
        self.guard = WorkDir(self.work_dir)

    # Every path a step reads or writes goes through the guard (kargo.workdir).

    def path(self, rel: str | os.PathLike) -> Path:
        with _escape_is_a_step_error():
            return self.guard.path(rel)

    def read_text(self, rel: str | os.PathLike) -> str:
        with _escape_is_a_step_error():
            return self.guard.read_text(rel)

    def write_text(self, rel: str | os.PathLike, text: str) -> Path:
        with _escape_is_a_step_error():
            return self.guard.write_text(rel, text)

    def check_links(self, rel: str | os.PathLike) -> None:
        with _escape_is_a_step_error():
            self.guard.check_links(rel)


@contextmanager
def _escape_is_a_step_error():
    try:
        yield
    except PathEscape as exc:
        raise StepError(str(exc)) from None


@dataclass
class StepResult:
    status: str = "Succeeded"  # Succeeded | Failed
    outputs: dict = field(default_factory=dict)
    message: str = ""


class StepModel(BaseModel):
    """Base for step config models: unknown fields are rejected (like the JSON
    schemas' additionalProperties: false) and types are not coerced (a JSON
    schema "boolean" does not accept the string "true")."""

    model_config = ConfigDict(extra="forbid", strict=True)


def git_ref_name(value: str | None) -> str | None:
    """Validator for branch/tag/commit names: one starting with "-" would be
    read by git as an option (and is never a valid ref name anyway)."""
    if value and value.startswith("-"):
        raise ValueError(f"{value!r} is not a valid git ref name")
    return value


class Step:
    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    @classmethod
    def validate(cls, raw: dict) -> Any:
        """Validate an (already expression-evaluated) config; report every
        invalid field as ``config.<path>: <reason>``."""
        if not isinstance(raw, dict):
            raise StepError("config: must be an object")
        try:
            return cls.Config.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise StepError("; ".join(map(str, field_errors(exc, "config")))) from None

    def run(self, ctx: StepContext, config: Any) -> StepResult:
        raise NotImplementedError


# --- registry ------------------------------------------------------------------
# Lives here (not in __init__) so step modules can import it without a cycle.

# Maps a step name to its Step class. Classes (not instances) are stored because
# the promotion engine calls ``impl.validate(raw)`` and then ``impl().run(...)``.
STEPS: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step available under its ``name``."""
    if cls.name in STEPS and STEPS[cls.name] is not cls:
        raise ValueError(f"step {cls.name!r} registered twice")
    STEPS[cls.name] = cls
    return cls


# --- subprocesses --------------------------------------------------------------


def run_command(
    ctx: StepContext,
    args: list[str],
    *,
    cwd: Path,
    timeout: float = 120,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run a program (argument list, never a shell) inside the work dir. A git command that
    talks to a remote gets the project's stored credential for it, if any (git_auth_env)."""
    if ctx.project_id is not None and args and args[0] == "git":
        env = {**git_auth_env(ctx, args, ctx.path(cwd)), **(env or {})}
    try:
        proc = runner.run(args, cwd=ctx.path(cwd), timeout=timeout, input=input, env=env)
    except runner.CommandError as exc:
        raise StepError(str(exc)) from None
    if check and proc.returncode != 0:
        detail = runner.tail(proc.stderr or proc.stdout) or f"exit code {proc.returncode}"
        raise StepError(f"{' '.join(args[:2])} failed: {detail}")
    return proc


# git commands that talk to the remote; the steps always name it `origin`, or give the URL to clone.
_NETWORK_VERBS = {"clone", "fetch", "pull", "push", "ls-remote"}


def git_auth_env(ctx: StepContext, args: list[str], cwd: Path) -> dict[str, str]:
    """The environment that lets a git command authenticate with the stored credential for its
    remote (projects.credentials.git_env: an askpass helper, values only in this process's
    environment): the URL after `--` for a clone, origin's URL otherwise. {} for commands that
    stay local, and when no credential matches."""
    words = iter(args[1:])
    verb = ""
    for word in words:
        if word == "-c":
            next(words, None)
        elif not word.startswith("-"):
            verb = word
            break
    if verb not in _NETWORK_VERBS or not has_credentials(ctx.project_id, "git"):
        return {}
    if verb == "clone":
        url = args[args.index("--") + 1] if "--" in args[:-1] else ""
    else:
        try:
            found = runner.run(["git", "config", "--get", "remote.origin.url"], cwd=cwd, timeout=30)
        except runner.CommandError:
            return {}
        url = found.stdout.strip() if found.returncode == 0 else ""
    return git_env(ctx.project_id, url) if url else {}


def git(
    ctx: StepContext,
    cwd: Path,
    *args: str,
    timeout: float = 120,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run git and return its stripped stdout."""
    proc = run_command(
        ctx, ["git", *args], cwd=cwd, timeout=timeout, check=check, input=input, env=env
    )
    return proc.stdout.strip()


def worktree_path(ctx: StepContext, rel: str) -> Path:
    """Resolve a config path that must name a git working tree."""
    path = ctx.path(rel)
    if not path.is_dir():
        raise StepError(f"{rel}: no such directory")
    if not (path / ".git").exists():
        raise StepError(f"{rel}: not a git working tree (run git-clone first)")
    return path
