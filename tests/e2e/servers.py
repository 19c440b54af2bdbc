"""The dashboard as real server processes, and the Chromium that drives it: what the e2e fixtures
(tests/e2e/conftest.py) and the live-latency bench (bench/bench_live_latency.py) share.

No pytest here: failures raise ServerError (Unavailable when a service the scaled mode needs is
missing), with the log tail in the message; the fixtures turn them into pytest failures.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
DAPHNE = str(VENV_BIN / "daphne")
CELERY = str(VENV_BIN / "celery")
REDIS_CLI = ["redis-cli", "-h", "127.0.0.1", "-p", "6379"]
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]

# Variables of the calling process that must not leak into the servers: the server gets exactly
# the configuration its caller names (DJANGO_ALLOW_ASYNC_UNSAFE, needed by pytest-playwright in
# the tests, would hide async-safety bugs in the server).
_STRIP_PREFIXES = ("KARGO_", "DJANGO_")
_STRIP_NAMES = {"DATABASE_URL", "REDIS_URL"}

# Every server process started and not stopped yet, so a failing test shows their logs.
RUNNING: list["ServerProcess"] = []


class ServerError(RuntimeError):
    """A server process or command failed; the message says how, with its output."""


class Unavailable(ServerError):
    """A service the scaled mode needs (Redis, PostgreSQL, a free Redis database) is missing."""


# --------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Installed in every page before its scripts run: records the htmx websocket's life, so a test can
# wait for the live connection and prove that it never dropped, and that the page never reloaded
# (a reload runs this script again and resets the counters and the marker a test set). Also the
# ids of pushed fragments htmx found no element for (htmx:oobErrorNoTarget, which htmx logs as an
# error): a page must get only what it shows. And every Content Security Policy violation.
LIVE_PROBE = """
window.__kargo = {wsOpen: 0, wsClose: 0, wsMessages: 0, oobMissing: [], cspViolations: []};
document.addEventListener('securitypolicyviolation', (e) => {
  window.__kargo.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
document.addEventListener('htmx:wsOpen', () => { window.__kargo.wsOpen += 1; });
document.addEventListener('htmx:wsClose', () => { window.__kargo.wsClose += 1; });
document.addEventListener('htmx:wsAfterMessage', () => { window.__kargo.wsMessages += 1; });
document.addEventListener('htmx:oobErrorNoTarget', (e) => {
  window.__kargo.oobMissing.push(String(e.detail.target));
});
"""


def freight_card(page, label: str):
    """The timeline card of the Freight labelled `label` (a Playwright locator)."""
    name = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator("li.freight-card").filter(has=page.locator(".freight-label", has_text=name))


# --------------------------------------------------------------------------------------------
# Configuration and commands
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict:
    """This process's environment without any KARGO_/DJANGO_/DATABASE_URL/REDIS_URL of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES
    }
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def embedded_env(data_dir: Path, secret_key: str = "test") -> dict:
    """Embedded mode: SQLite in `data_dir`, in-memory channel layer, the demo enabled."""
    return clean_env(
        KARGO_DATA_DIR=str(data_dir),
        KARGO_SQLITE_PATH=str(data_dir / "db.sqlite3"),
        KARGO_DEMO="1",
        KARGO_MIN_DISCOVERY_INTERVAL="0",
        DJANGO_SECRET_KEY=secret_key,
    )


def scaled_env(
    data_dir: Path, db_name: str, redis_db: int, channel_prefix: str, secret_key: str = "test"
) -> dict:
    """Scaled mode: PostgreSQL database `db_name` and Redis database `redis_db` on localhost."""
    return clean_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db_name}",
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        KARGO_CHANNEL_PREFIX=channel_prefix,
        KARGO_DATA_DIR=str(data_dir),
        KARGO_DEMO="1",
        KARGO_MIN_DISCOVERY_INTERVAL="0",
        DJANGO_SECRET_KEY=secret_key,
    )


def manage(env: dict, *args: str, timeout: float = 180) -> str:
    """Run `manage.py ARGS` in its own process against the server's configuration."""
    proc = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise ServerError(
            f"manage.py {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc.stdout


def add_member_code(project: str, username: str, password: str, role: str) -> str:
    """`manage.py shell -c` code that creates a user with a role in the project."""
    return (
        "from django.contrib.auth import get_user_model\n"
        "from projects.actions import do_set_membership\n"
        "from projects.models import Project\n"
        f"user = get_user_model().objects.create_user({username!r}, '{username}@example.com', "
        f"{password!r})\n"
        f"do_set_membership(Project.objects.get(name={project!r}), user, {role!r})\n"
    )


def seed_demo(env: dict) -> None:
    """Create the schema and the demo project the servers then run (before any promotion:
    without the demo's auto-promotion of test, which the tests would race)."""
    manage(env, "migrate", "--noinput")
    manage(env, "demo", "--no-auto-promotion", "--no-verification", "--no-registry")


# The commands of the two runtime modes. Embedded: `manage.py serve` runs daphne, the Celery
# worker and beat in one process. Scaled: daphne (web only), a worker and beat as three.


def serve_argv(port: int) -> list[str]:
    return [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]


def daphne_argv(port: int) -> list[str]:
    return [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "kargo_ui.asgi:application"]


def worker_argv(loglevel: str) -> list[str]:
    pool = ["--pool", "threads", "--concurrency", "2"]
    quiet = ["--without-mingle", "--without-gossip"]
    return [CELERY, "-A", "kargo_ui", "worker", *pool, "--loglevel", loglevel, *quiet]


def beat_argv(data_dir: Path) -> list[str]:
    schedule = str(data_dir / "beat-schedule")
    return [CELERY, "-A", "kargo_ui", "beat", "--loglevel", "WARNING", "--schedule", schedule]


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------


class ServerProcess:
    """A long-running process in its own process group (so a terminal's Ctrl-C reaches only the
    caller, which then stops the group), its output going to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        RUNNING.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 150) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ServerError(
                f"{self.name} ({' '.join(self.argv)}) exited with {self.proc.returncode}:\n"
                f"{self.tail()}"
            )

    def wait_for_log(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.log():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name} did not log {pattern!r} within {timeout:.0f}s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def wait_for_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name}: {url} did not answer within {timeout:.0f}s:\n{self.tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the whole process group: TERM, then KILL if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            # Also whatever the leader left behind in its group.
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()
        if self in RUNNING:
            RUNNING.remove(self)


# --------------------------------------------------------------------------------------------
# Redis and PostgreSQL (scaled mode)
# --------------------------------------------------------------------------------------------


def service_check(argv: list[str], what: str) -> None:
    """Raise Unavailable unless `argv` (a ping of the service `what`) succeeds."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what} is not answering ({' '.join(argv)}: {exc})") from None
    if proc.returncode != 0:
        raise Unavailable(
            f"{what} is not answering ({' '.join(argv)} exited {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()}). Start it (scripts/test.sh does) and run again."
        )


def check_scaled_services() -> None:
    """Redis and PostgreSQL answer on their usual local ports."""
    service_check([*REDIS_CLI, "ping"], "Redis on 127.0.0.1:6379")
    service_check(["pg_isready", *PG], "PostgreSQL on 127.0.0.1:5432")


def free_redis_db(first: int = 7) -> int:
    """An empty Redis database number, so concurrent runs do not share a Celery queue: `first`,
    then the ones above it, then those below it (the tests and the bench start apart)."""
    for db in (*range(first, 16), *range(1, first)):
        out = subprocess.run(
            [*REDIS_CLI, "-n", str(db), "dbsize"], capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0 and out.stdout.strip() == "0":
            return db
    raise Unavailable("no empty Redis database (1-15) on 127.0.0.1:6379")


def flush_redis_db(db: int) -> None:
    subprocess.run([*REDIS_CLI, "-n", str(db), "flushdb"], capture_output=True, timeout=30)


def create_database(name: str) -> None:
    created = subprocess.run(["createdb", *PG, name], capture_output=True, text=True, timeout=30)
    if created.returncode != 0:
        raise Unavailable(f"createdb {name} failed: {created.stderr.strip()}")


def drop_database(name: str) -> None:
    subprocess.run(["dropdb", *PG, "--force", "--if-exists", name], capture_output=True, timeout=60)
