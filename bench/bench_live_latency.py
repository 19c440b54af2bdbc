"""Live-update latency: how long a promotion takes to reach an OPEN page over the websocket.

Run: .venv/bin/python bench/bench_live_latency.py [--mode embedded|scaled|both] [--runs N]

For each runtime mode it starts the servers as the e2e fixtures do (embedded: `manage.py serve`;
scaled: daphne + `celery worker` + `celery beat` on Redis/PostgreSQL), seeds the demo, and opens
/project/kargo-demo/ in two Chromium pages. Page A opens a Freight drawer and clicks Promote to
`test`, noting Date.now() just before the click; page B (never reloaded) watches the `test` node
with a MutationObserver and notes when its phase first reads "Promoting" and when it reads "Ready"
with the new Freight. Prints those delays per run, then the median and max per mode. Does not
assert on times; not part of the test run. Every process, temp dir and database it made is
removed at the end, also on Ctrl-C.
"""

import argparse
import contextlib
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.e2e.servers when run as bench/bench_live_latency.py

from tests.e2e import servers  # noqa: E402

PROJECT = "kargo-demo"
STAGE = "test"
# The demo seeds v1.0.0 and v1.1.0; the Warehouse discovers v1.2.0. Cycling through them means
# every run promotes Freight other than the one the Stage holds, so "Ready with the new Freight"
# is a real change.
FREIGHT = ("v1.0.0", "v1.1.0", "v1.2.0")
# Every page gets the tests' LIVE_PROBE (tests/e2e/servers.py): it counts the htmx websocket's
# opens and closes, so the report can say whether page B ever reconnected.

# Page B: watch the Stage node. htmx swaps the whole #pipeline section out-of-band, so the node is
# looked up again on every mutation.
WATCH_STAGE = """([stage, label]) => {
    const read = () => {
        const node = document.querySelector(`.node-stage[data-stage="${stage}"]`);
        if (!node) return {phase: null, freight: []};
        const pill = node.querySelector('[data-testid=stage-phase]');
        const freight = [...node.querySelectorAll('[data-testid=stage-freight]')]
            .map((e) => e.textContent.trim().split(/\\s+/)[0]);
        return {phase: pill ? pill.textContent.trim() : null, freight};
    };
    const start = read();
    const rec = {start, promotingAt: null, readyAt: null, phases: [[start.phase, Date.now()]]};
    const check = () => {
        const now = Date.now();
        const s = read();
        if (s.phase !== rec.phases[rec.phases.length - 1][0]) rec.phases.push([s.phase, now]);
        if (rec.promotingAt === null && s.phase === 'Promoting') rec.promotingAt = now;
        if (rec.readyAt === null && s.phase === 'Ready' && s.freight.includes(label)
                && (rec.promotingAt !== null || !start.freight.includes(label))) {
            rec.readyAt = now;
            observer.disconnect();
        }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
    window.__lat = rec;
}"""

# Page A: the click itself, with the time taken right before it in the same task.
CLICK = """(selector) => {
    const button = document.querySelector(selector);
    const t = Date.now();
    button.click();
    return t;
}"""


def quietly(close) -> None:
    """Close a browser object; after Ctrl-C the Playwright driver may be gone already."""
    with contextlib.suppress(Exception):
        close()


# --------------------------------------------------------------------------------------------
# Server processes (tests/e2e/servers.py, as the e2e fixtures start them)
# --------------------------------------------------------------------------------------------


def start(stack: contextlib.ExitStack, name: str, argv: list[str], env: dict, log_dir: Path):
    server = servers.ServerProcess(name, argv, env, log_dir)
    stack.callback(server.stop)
    return server


def temp_dir(stack: contextlib.ExitStack, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def start_embedded(stack: contextlib.ExitStack) -> str:
    """`manage.py serve`: daphne, Celery worker and beat in one process; SQLite, in-memory layer."""
    data_dir = temp_dir(stack, "kargo-bench-embedded-")
    env = servers.embedded_env(data_dir, secret_key="bench")
    servers.seed_demo(env)
    port = servers.free_port()
    server = start(stack, "serve", servers.serve_argv(port), env, data_dir)
    server.wait_for_http(f"http://127.0.0.1:{port}/healthz")
    return f"http://127.0.0.1:{port}"


def start_scaled(stack: contextlib.ExitStack) -> str:
    """daphne (web only), `celery worker` and `celery beat` as three processes on PostgreSQL and
    Redis, with a database and a Redis db of their own."""
    servers.check_scaled_services()
    token = secrets.token_hex(4)
    db_name = f"kargo_bench_{token}"
    # From 8 up (the e2e fixtures try 7 first), so a concurrent test run does not share the queue.
    redis_db = servers.free_redis_db(first=8)
    data_dir = temp_dir(stack, "kargo-bench-scaled-")
    servers.create_database(db_name)
    # Registered now, so they run after the processes (registered later) have stopped.
    stack.callback(servers.drop_database, db_name)
    stack.callback(servers.flush_redis_db, redis_db)
    env = servers.scaled_env(
        data_dir, db_name, redis_db, f"kargo-bench-{token}", secret_key="bench"
    )
    servers.seed_demo(env)
    port = servers.free_port()
    daphne = start(stack, "daphne", servers.daphne_argv(port), env, data_dir)
    start(stack, "celery-worker", servers.worker_argv("WARNING"), env, data_dir)
    start(stack, "celery-beat", servers.beat_argv(data_dir), env, data_dir)
    daphne.wait_for_http(f"http://127.0.0.1:{port}/healthz")
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------------------------
# The browser side
# --------------------------------------------------------------------------------------------


def open_project(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/project/{PROJECT}/")
    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
    page.wait_for_function("window.__kargo && window.__kargo.wsOpen > 0", timeout=15_000)


def wait_for_all_freight(page: Page, base_url: str, timeout: float = 90) -> None:
    """Reload until the Warehouse has discovered the newest release (the others are seeded)."""
    deadline = time.monotonic() + timeout
    while not all(servers.freight_card(page, label).count() for label in FREIGHT):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Freight {FREIGHT} not all discovered after {timeout:.0f}s")
        time.sleep(1)
        open_project(page, base_url)


def measure(a: Page, b: Page, label: str) -> dict:
    """One promotion of `label` to STAGE clicked in A, watched in B. Returns its figures."""
    card = servers.freight_card(a, label)
    card_id = card.get_attribute("id")  # freight-<pk>
    drawer = f"#freight-drawer-{card_id.removeprefix('freight-')}"
    button = f"{drawer} [data-testid=promote-to-{STAGE}]"
    card.locator(".freight-link").click()
    expect(a.locator(button)).to_be_visible(timeout=10_000)

    b.evaluate(WATCH_STAGE, [STAGE, label])
    clicked = a.evaluate(CLICK, button)

    # A: the promotion drawer the click opened, followed live until the promotion ends.
    phase = a.locator("#drawer .drawer-body[id^=promotion-drawer-] [data-testid=promotion-phase]")
    expect(phase).to_have_text(re.compile("Succeeded|Failed|Errored|Aborted"), timeout=120_000)
    started = a.locator("#drawer .kv", has_text="Started").inner_text()
    took = re.search(r"took (\S+)", started)
    result = phase.inner_text().strip()
    # B: the Stage shows the new Freight (the observer then stops); a failed promotion never does.
    if result == "Succeeded":
        b.wait_for_function("window.__lat.readyAt !== null", timeout=60_000)
    rec = b.evaluate("window.__lat")
    # Nothing of this promotion left running or queued before the next run.
    node = b.locator(f".node-stage[data-stage={STAGE}]")
    expect(node.locator(".promo-progress")).to_have_count(0, timeout=30_000)
    expect(node.locator(".pill-wait")).to_have_count(0, timeout=30_000)
    return {
        "freight": label,
        "result": result,
        "promoting_ms": None if rec["promotingAt"] is None else rec["promotingAt"] - clicked,
        "ready_ms": None if rec["readyAt"] is None else rec["readyAt"] - clicked,
        "took": took.group(1) if took else "?",
        "phases": " > ".join(p for p, _ in rec["phases"]),
    }


def run_mode(mode: str, runs: int, browser) -> list[dict]:
    with contextlib.ExitStack() as stack:
        base_url = start_embedded(stack) if mode == "embedded" else start_scaled(stack)
        context = browser.new_context()
        stack.callback(quietly, context.close)
        context.add_init_script(servers.LIVE_PROBE)
        context.set_default_timeout(30_000)
        a = context.new_page()
        a.goto(f"{base_url}/login/")
        a.get_by_label("Username").fill("demo")
        a.get_by_label("Password").fill("demo")
        a.get_by_role("button", name="Sign in").click()
        expect(a).to_have_url(f"{base_url}/")
        open_project(a, base_url)
        wait_for_all_freight(a, base_url)
        b = context.new_page()  # the same session cookie: also logged in
        open_project(b, base_url)
        b.evaluate("window.__notReloaded = true")

        results = []
        for i in range(runs):
            row = {"mode": mode, "run": i + 1, **measure(a, b, FREIGHT[i % len(FREIGHT)])}
            results.append(row)
            print_row(row)
        stats = b.evaluate("({...window.__kargo, same: window.__notReloaded === true})")
        if not stats["same"] or stats["wsOpen"] != 1 or stats["wsClose"] != 0:
            print(f"  note: page B reloaded or reconnected during the runs: {stats}")
        return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

HEADER = (
    f"{'mode':<9} {'run':>3} {'freight':<7} {'promoting_ms':>12} {'ready_ms':>9} "
    f"{'took':>5}  {'result':<9} B saw"
)


def ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_row(row: dict) -> None:
    print(
        f"{row['mode']:<9} {row['run']:>3} {row['freight']:<7} {ms(row['promoting_ms']):>12} "
        f"{ms(row['ready_ms']):>9} {row['took']:>5}  {row['result']:<9} {row['phases']}",
        flush=True,
    )


def print_summary(results: dict[str, list[dict]]) -> None:
    print()
    print(f"{'mode':<9} {'stat':<6} {'promoting_ms':>12} {'ready_ms':>9}")
    for mode, rows in results.items():
        for name, fn in (("median", statistics.median), ("max", max)):
            figures = []
            for key in ("promoting_ms", "ready_ms"):
                values = [r[key] for r in rows if r[key] is not None]
                figures.append(ms(fn(values)) if values else "-")
            print(f"{mode:<9} {name:<6} {figures[0]:>12} {figures[1]:>9}")


# Set by Ctrl-C or SIGTERM. The terminal's Ctrl-C also reaches Playwright's driver, so what
# surfaces in this process may be a "target closed" error rather than KeyboardInterrupt.
_interrupted = False


def _on_signal(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "scaled", "both"), default="both")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not os.path.exists(servers.CHROMIUM):
        sys.exit(
            f"{servers.CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        )
    # Ctrl-C and `kill` unwind every ExitStack: servers stopped, databases dropped, dirs removed.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    cpus = len(os.sched_getaffinity(0))
    print(f"nproc: {cpus}  python: {platform.python_version()} ({sys.executable})")
    print(f"click in page A -> page B's `{STAGE}` node shows Promoting / Ready with the Freight")
    print("took: the promotion's duration as its drawer shows it (whole seconds)")
    print()
    modes = ["embedded", "scaled"] if args.mode == "both" else [args.mode]
    results: dict[str, list[dict]] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=servers.CHROMIUM, headless=True, args=servers.CHROMIUM_ARGS
            )
            try:
                print(HEADER)
                for mode in modes:
                    try:
                        results[mode] = run_mode(mode, args.runs, browser)
                    except servers.Unavailable as exc:
                        print(f"{mode:<9} skipped: {exc}")
            finally:
                quietly(browser.close)
    except BaseException:
        if not _interrupted:
            raise
        print("\ninterrupted: servers stopped, temporary databases and directories removed")
        sys.exit(130)
    if results:
        print_summary(results)


if __name__ == "__main__":
    main()
