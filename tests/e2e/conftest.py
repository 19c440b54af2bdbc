"""Browser-test fixtures: Debian's Chromium, and the dashboard running as real server processes.

The servers own their databases: these tests never touch the ORM (no pytest-django DB fixtures).
They drive the browser and look at the git repositories the promotions push to.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
RESULTS = ROOT / "test-results"
CHROMIUM = "/usr/bin/chromium"

# Variables of the test process that must not leak into the servers: the server gets exactly the
# configuration each fixture names (DJANGO_ALLOW_ASYNC_UNSAFE, needed by pytest-playwright here,
# would hide async-safety bugs in the server).
_STRIP_PREFIXES = ("KARGO_", "DJANGO_")
_STRIP_NAMES = {"DATABASE_URL", "REDIS_URL"}

# Every server process started by these fixtures, so a failing test shows their logs.
_RUNNING: list["ServerProcess"] = []


# --------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "`playwright install` cannot work on this machine"
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def results_dir() -> Path:
    """Screenshots for people to look at, in ./test-results."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


# Screenshots taken in this session. pytest-playwright empties ./test-results at the start of
# EVERY pytest session in this checkout (its autouse `delete_output_dir` fixture), so another
# pytest run going on at the same time can wipe them: the session's end puts them back.
_SCREENSHOTS: dict[str, bytes] = {}


def pytest_sessionfinish(session):
    if not _SCREENSHOTS:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, data in _SCREENSHOTS.items():
        path = RESULTS / name
        if not path.exists():
            path.write_bytes(data)


# Installed in every page before its scripts run: records the htmx websocket's life, so a test can
# wait for the live connection and prove that it never dropped, and that the page never reloaded
# (a reload runs this script again and resets the counters and the marker a test set).
LIVE_PROBE = """
window.__kargo = {wsOpen: 0, wsClose: 0, wsMessages: 0};
document.addEventListener('htmx:wsOpen', () => { window.__kargo.wsOpen += 1; });
document.addEventListener('htmx:wsClose', () => { window.__kargo.wsClose += 1; });
document.addEventListener('htmx:wsAfterMessage', () => { window.__kargo.wsMessages += 1; });
"""


class Ui:
    """What a person does in the dashboard, as small steps shared by the browser tests."""

    def __init__(self, results: Path):
        self.results = results

    def screenshot(self, page: Page, name: str) -> Path:
        path = self.results / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _SCREENSHOTS[name] = page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, page: Page, base_url: str, username: str, password: str) -> None:
        page.goto(f"{base_url}/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{base_url}/")
        expect(page.locator(".topbar .who")).to_have_text(username)

    def open_project(self, page: Page, base_url: str, name: str = "kargo-demo") -> None:
        page.goto(f"{base_url}/project/{name}/")
        expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
        page.wait_for_function("window.htmx !== undefined")

    def wait_live(self, page: Page) -> None:
        """Wait until the page's websocket (htmx ws extension) is connected."""
        page.wait_for_function("window.__kargo && window.__kargo.wsOpen > 0", timeout=15_000)

    def mark(self, page: Page) -> None:
        """Tag the current document; `assert_same_document` then proves it was never reloaded."""
        page.evaluate("window.__kargoMark = 'not-reloaded'")

    def assert_same_document(self, page: Page) -> None:
        assert page.evaluate("window.__kargoMark") == "not-reloaded", "the page was reloaded"

    def live_stats(self, page: Page) -> dict:
        return page.evaluate("({...window.__kargo})")

    def freight_card(self, page: Page, label: str):
        return page.locator("li.freight-card").filter(
            has=page.locator(".freight-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        )

    def wait_for_freight(self, page: Page, label: str, timeout: float = 30.0):
        """The timeline card for `label`, reloading while the Warehouse has not discovered it."""
        card = self.freight_card(page, label)
        deadline = time.monotonic() + timeout
        while True:
            try:
                expect(card).to_be_visible(timeout=4_000)
                return card
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no Freight card {label!r} on {page.url} after {timeout:.0f}s; "
                        f"timeline: {page.locator('#timeline').inner_text()!r}"
                    ) from None
                page.reload()

    def open_freight_drawer(self, page: Page, label: str, wait_for=None, timeout: float = 30.0):
        """Click the Freight card and wait for its drawer; with `wait_for` (a locator inside the
        drawer), click again until it shows: availability downstream follows verification, which
        the drawer (not pushed live) shows only when opened again."""
        deadline = time.monotonic() + timeout
        while True:
            self.freight_card(page, label).locator(".freight-link").click()
            drawer = page.locator("#drawer .drawer-body[id^=freight-drawer-]")
            expect(drawer).to_be_visible(timeout=10_000)
            if wait_for is None:
                return drawer
            try:
                expect(wait_for).to_be_visible(timeout=3_000)
                return drawer
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{wait_for} never appeared in the freight drawer: "
                        f"{page.locator('#drawer').inner_text()!r}"
                    ) from None

    def csrf_token(self, page: Page) -> str:
        for cookie in page.context.cookies():
            if cookie["name"] == "csrftoken":
                return cookie["value"]
        raise AssertionError("no csrftoken cookie in the browser")

    def post_form(self, page: Page, path: str, data: dict, headers: dict | None = None) -> dict:
        """fetch() a form POST from the page, with the CSRF token a browser would send."""
        return page.evaluate(
            """async ([path, data, headers]) => {
                const r = await fetch(path, {method: 'POST', headers, body: new URLSearchParams(data)});
                return {status: r.status, redirected: r.redirected, url: r.url, text: await r.text()};
            }""",
            [path, data, {"X-CSRFToken": self.csrf_token(page), **(headers or {})}],
        )


@pytest.fixture(scope="session")
def ui(results_dir) -> Ui:
    return Ui(results_dir)


@pytest.fixture
def context(context):
    context.add_init_script(LIVE_PROBE)
    context.set_default_timeout(30_000)
    return context


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES
    }
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def embedded_env(data_dir: Path) -> dict:
    return clean_env(
        KARGO_DATA_DIR=str(data_dir),
        KARGO_SQLITE_PATH=str(data_dir / "db.sqlite3"),
        KARGO_DEMO="1",
        KARGO_MIN_DISCOVERY_INTERVAL="0",
        DJANGO_SECRET_KEY="test",
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
        pytest.fail(
            f"manage.py {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


class ServerProcess:
    """A long-running process in its own process group, its output going to a log file."""

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
        _RUNNING.append(self)

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
            pytest.fail(
                f"{self.name} ({' '.join(self.argv)}) exited with {self.proc.returncode}:\n"
                f"{self.tail()}",
                pytrace=False,
            )

    def wait_for_log(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.log():
            self._check_alive()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{self.name} did not log {pattern!r} within {timeout:.0f}s:\n{self.tail()}",
                    pytrace=False,
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
                pytest.fail(
                    f"{self.name}: {url} did not answer within {timeout:.0f}s:\n{self.tail()}",
                    pytrace=False,
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
        if self in _RUNNING:
            _RUNNING.remove(self)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test shows the logs of the servers it ran against."""
    report = yield
    if report.failed:
        for server in _RUNNING:
            report.sections.append((f"{server.name} log (last lines)", server.tail()))
    return report


def _failed_since(request, before: int) -> bool:
    return request.session.testsfailed > before


def _stop_all(request, servers: list[ServerProcess], failed_before: int) -> None:
    failed = _failed_since(request, failed_before)
    for server in servers:
        if failed:
            sys.stderr.write(f"\n===== {server.name} log =====\n{server.log()}\n")
        server.stop()


@pytest.fixture(scope="module")
def live_server_embedded(request):
    """`manage.py serve` (daphne + in-process Celery worker and beat, SQLite, in-memory channel
    layer) on a free loopback port, seeded by `manage.py demo`. Yields (base_url, data_dir)."""
    data_dir = Path(tempfile.mkdtemp(prefix="kargo-e2e-"))
    env = embedded_env(data_dir)
    manage(env, "migrate", "--noinput")
    manage(env, "demo")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    failed_before = request.session.testsfailed
    server = ServerProcess(
        "serve",
        [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        data_dir,
    )
    try:
        server.wait_for_log("serving on", timeout=60)
        server.wait_for_http(f"{base_url}/healthz", timeout=30)
        yield base_url, data_dir
    finally:
        _stop_all(request, [server], failed_before)
        if not _failed_since(request, failed_before):
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def manage_embedded():
    """Run a management command against a `live_server_embedded` data dir."""

    def run(data_dir: Path, *args: str) -> str:
        return manage(embedded_env(data_dir), *args)

    return run


def _service_check(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{what} is not answering ({' '.join(argv)}: {exc})", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"{what} is not answering ({' '.join(argv)} exited {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()}). Start it (scripts/test.sh does) and run again.",
            pytrace=False,
        )


def _free_redis_db() -> int:
    """An empty Redis database number, so concurrent runs do not share a Celery queue."""
    for db in (7, *range(8, 16), *range(1, 7)):
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "-n", str(db), "dbsize"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip() == "0":
            return db
    pytest.fail("no empty Redis database (1-15) on 127.0.0.1:6379 for the e2e run", pytrace=False)


@pytest.fixture(scope="module")
def live_server_scaled(request):
    """Scaled mode: PostgreSQL + Redis, with daphne (web only), a Celery worker and Celery beat
    as three separate processes. Yields a dict: base_url, data_dir and the three processes."""
    _service_check(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], "Redis on 127.0.0.1:6379"
    )
    _service_check(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"],
        "PostgreSQL on 127.0.0.1:5432",
    )
    token = secrets.token_hex(4)
    db_name = f"kargo_e2e_{token}"
    redis_db = _free_redis_db()
    data_dir = Path(tempfile.mkdtemp(prefix="kargo-e2e-scaled-"))
    pg = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
    created = subprocess.run(["createdb", *pg, db_name], capture_output=True, text=True, timeout=30)
    if created.returncode != 0:
        pytest.fail(f"createdb {db_name} failed: {created.stderr.strip()}", pytrace=False)
    env = clean_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db_name}",
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        KARGO_CHANNEL_PREFIX=f"kargo-e2e-{token}",
        KARGO_DATA_DIR=str(data_dir),
        KARGO_DEMO="1",
        KARGO_MIN_DISCOVERY_INTERVAL="0",
        DJANGO_SECRET_KEY="test",
    )
    servers: list[ServerProcess] = []
    failed_before = request.session.testsfailed
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "demo")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        daphne = ServerProcess(
            "daphne",
            [
                str(VENV_BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "kargo_ui.asgi:application",
            ],
            env,
            data_dir,
        )
        servers.append(daphne)
        # INFO, not WARNING: the engine logs "worker <host>:<pid>:<thread> runs promotion <name>"
        # at INFO, which lets the test check which process ran the promotion.
        worker = ServerProcess(
            "celery-worker",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "kargo_ui",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
            ],
            env,
            data_dir,
        )
        servers.append(worker)
        beat = ServerProcess(
            "celery-beat",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "kargo_ui",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(data_dir / "beat-schedule"),
            ],
            env,
            data_dir,
        )
        servers.append(beat)
        daphne.wait_for_http(f"{base_url}/healthz", timeout=60)
        yield {
            "base_url": base_url,
            "data_dir": data_dir,
            "daphne": daphne,
            "worker": worker,
            "beat": beat,
            "redis_db": redis_db,
        }
    finally:
        _stop_all(request, servers, failed_before)
        subprocess.run(
            ["dropdb", *pg, "--force", "--if-exists", db_name],
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "-n", str(redis_db), "flushdb"],
            capture_output=True,
            timeout=30,
        )
        if not _failed_since(request, failed_before):
            shutil.rmtree(data_dir, ignore_errors=True)
