"""Browser-test fixtures: Debian's Chromium, and the dashboard running as real server processes.

The servers own their databases: these tests never touch the ORM (no pytest-django DB fixtures).
They drive the browser and look at the git repositories the promotions push to.
"""

import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .servers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LIVE_PROBE,
    ROOT,
    RUNNING,
    ServerError,
    ServerProcess,
    beat_argv,
    check_scaled_services,
    create_database,
    daphne_argv,
    drop_database,
    embedded_env,
    flush_redis_db,
    free_port,
    free_redis_db,
    freight_card,
    manage,
    scaled_env,
    seed_demo,
    serve_argv,
    worker_argv,
)

RESULTS = ROOT / "test-results"
TEMPLATE_SYNTAX = re.compile(r"\{[#%]|[#%]\}")


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
        "args": list(CHROMIUM_ARGS),
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
        # Template syntax that leaked into the page (a `{# #}` comment spanning lines shows).
        expect(page.locator("body")).not_to_contain_text(TEMPLATE_SYNTAX)

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
        return freight_card(page, label)

    def wait_for_freight(self, page: Page, label: str, timeout: float = 30.0):
        """The timeline card for `label`, on the page already or pushed live: a Freight the
        Warehouse creates re-renders the timeline on every open page. Never reloads."""
        card = self.freight_card(page, label)
        expect(card, f"no Freight card {label!r} appeared on {page.url}").to_be_visible(
            timeout=timeout * 1000
        )
        return card

    def open_freight_drawer(self, page: Page, label: str, wait_for=None, timeout: float = 30.0):
        """Click the Freight card once and wait for its drawer; with `wait_for` (a locator inside
        the drawer), also wait for that to show: the open drawer follows changes live."""
        self.freight_card(page, label).locator(".freight-link").click()
        drawer = page.locator("#drawer .drawer-body[id^=freight-drawer-]")
        expect(drawer).to_be_visible(timeout=10_000)
        expect(drawer.locator("table").first).to_contain_text(label)
        if wait_for is not None:
            expect(wait_for, f"{wait_for} never appeared in the freight drawer").to_be_visible(
                timeout=timeout * 1000
            )
        return drawer

    def assert_live_and_clean(self, page: Page) -> None:
        """One websocket the whole time (a reconnect would hide a consumer that crashed), and no
        pushed fragment the page had no element for (htmx logs those as errors), and nothing the
        Content Security Policy had to block."""
        stats = self.live_stats(page)
        assert stats["wsOpen"] == 1 and stats["wsClose"] == 0, stats
        assert stats["oobMissing"] == [], stats
        assert stats["cspViolations"] == [], stats

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
# Server processes (tests/e2e/servers.py; its ServerError becomes a test failure here)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def failing_on_server_error():
    """A ServerError (a command or server that failed, with its output) fails the test."""
    try:
        yield
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test shows the logs of the servers it ran against."""
    report = yield
    if report.failed:
        for server in RUNNING:
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
    with failing_on_server_error():
        seed_demo(env)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    failed_before = request.session.testsfailed
    server = ServerProcess("serve", serve_argv(port), env, data_dir)
    try:
        with failing_on_server_error():
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
        with failing_on_server_error():
            return manage(embedded_env(data_dir), *args)

    return run


@pytest.fixture(scope="module")
def live_server_scaled(request):
    """Scaled mode: PostgreSQL + Redis, with daphne (web only), a Celery worker and Celery beat
    as three separate processes. Yields a dict: base_url, data_dir and the three processes."""
    with failing_on_server_error():
        check_scaled_services()
        token = secrets.token_hex(4)
        db_name = f"kargo_e2e_{token}"
        redis_db = free_redis_db()
        data_dir = Path(tempfile.mkdtemp(prefix="kargo-e2e-scaled-"))
        create_database(db_name)
    env = scaled_env(data_dir, db_name, redis_db, f"kargo-e2e-{token}")
    servers: list[ServerProcess] = []
    failed_before = request.session.testsfailed
    try:
        with failing_on_server_error():
            seed_demo(env)
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            daphne = ServerProcess("daphne", daphne_argv(port), env, data_dir)
            servers.append(daphne)
            # INFO, not WARNING: the engine logs "worker <host>:<pid>:<thread> runs promotion
            # <name>" at INFO, which lets the test check which process ran the promotion.
            worker = ServerProcess("celery-worker", worker_argv("INFO"), env, data_dir)
            servers.append(worker)
            beat = ServerProcess("celery-beat", beat_argv(data_dir), env, data_dir)
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
        drop_database(db_name)
        flush_redis_db(redis_db)
        if not _failed_since(request, failed_before):
            shutil.rmtree(data_dir, ignore_errors=True)
