"""The one way this project runs an external program (git, kubectl, helm, ...).

An argument list, never a shell; an environment that can never prompt a human or point git at
another repository; its own process group, so a timeout stops the program's helpers too
(git-remote-https, upload-pack), not just the program.
"""

import os
import signal
import subprocess
from pathlib import Path

from .redaction import redact

# Variables that would point git at some other repository than the one we mean (they are set,
# for instance, when the server itself runs inside a git hook).
_REPO_LOCATING_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)


class CommandError(Exception):
    """The program could not be run, or did not finish in time; the message is for the user."""


def tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATING_VARS}
    # Never wait for a human: no username/password prompt, no ssh host-key or passphrase prompt.
    # A missing credential must fail fast, not hang a worker until the timeout.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    # Only plain transports: no ext:: (which runs commands) or other helpers, also for submodules,
    # unless an operator has deliberately configured otherwise.
    env.setdefault("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
    # A redirect would take git to a host the egress policy never saw (projects.egress).
    if "GIT_CONFIG_COUNT" not in env:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.followRedirects",
            GIT_CONFIG_VALUE_0="false",
        )
    # Stable English messages: callers recognise some failures (a rejected push) by their wording.
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


def run(
    args: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = 120,
    input: str | None = None,
    binary: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `args` and return the completed process whatever its exit code (stdout and stderr as
    text, or bytes with `binary`); `env` overrides single variables of the tool environment.
    Raises CommandError when the program is missing or times out."""
    display = " ".join(args[:2])
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env={**tool_env(), **(env or {})},
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise CommandError(f"{args[0]} is not installed on this machine") from None
    except OSError as exc:
        raise CommandError(f"cannot run {display}: {exc}") from None
    try:
        stdout, stderr = proc.communicate(
            input=input.encode() if input is not None else None, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise CommandError(f"{display} timed out after {timeout:g}s") from None
    if not binary:
        stdout = stdout.decode("utf-8", "replace")
        stderr = stderr.decode("utf-8", "replace")
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def tail(text: str | bytes, lines: int = 15, chars: int = 2000) -> str:
    """The last non-empty lines of a program's output, credentials masked."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return redact("\n".join(kept[-lines:])[-chars:])
