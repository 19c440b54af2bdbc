"""Live updates (issue 7): commit -> DOM latency beside a bare Channels echo, and lost updates and
throughput with live pages open. Prints figures; asserts nothing; not part of the test run.

Run: .venv/bin/python bench/bench_live_latency.py [--mode embedded|scaled|both] [--changes N]
     [--sizes demo,big|none] [--stages 500] [--promotions 200] [--pages 10] [--no-throughput]
     [--browser-nice N] [--keep-logs DIR]   (--help lists the rest)
The defaults take about 10 minutes on 2 idle cores (more on a busy machine).

Servers are started as the e2e fixtures start them (tests/e2e/servers.py), on the application of
bench/echo_asgi.py: the dashboard unchanged, plus a bare Channels echo (/bench-echo/) that is the
anchor every latency figure is printed beside.
  embedded: `manage.py serve` (daphne, Celery worker and beat in one process; SQLite, in-memory
            channel layer), through `bench/echo_asgi.py serve`;
  scaled:   daphne + `celery worker` x --workers + `celery beat` on PostgreSQL and Redis, with a
            database and a Redis db of their own.

1. Commit -> DOM. One Chromium page shows the project; a MutationObserver notes (Date.now()) each
   replacement of the watched Stage card. The same page POSTs a promotion of cheap Freight to that
   Stage (fetch, as the Promote button's form; the Stage's only step is compose-output), noting
   Date.now() just before sending and when the response (a redirect, sent after the commit)
   arrives. Latency = the first replacement that shows the new promotion (queued, running or
   done) minus either time. Then it waits until the card shows the promotion finished and the
   socket has been quiet for a moment. Between two promotions, the echo: a second page POSTs
   /bench-echo/send, whose handler does one group_send; its consumer forwards an HTML fragment
   that htmx's ws extension swaps into the page; measured the same way. Each page is a browser
   window of its own (see Browser); one uncounted change of each first (--warmup). Sizes: the
   demo project (`manage.py demo`) plus one cheap Stage, and a project of --stages cheap Stages
   in --lanes lanes (applied with `manage.py kargo apply -f`), promoting into the lanes' heads
   in turn.
2. Scaled mode only (--workers Celery worker processes): --promotions promotions queued over
   --tp-stages cheap Stages by one `manage.py shell` calling do_promote (or --queue http: POSTs
   of the Promote form), once with no page open and once with --pages pages open on that project
   (each page a window of its own). Throughput = promotions / (last finished_at - first
   created_at), read with psql, beside the CPU seconds each server process and Chromium used.
   With pages: how long after the last promotion ended every page showed every Stage's newest
   promotion finished, then every card compared with a freshly loaded page (and its last
   promotions with the database); per page the re-sync pushes and gaps it saw, its websocket
   closes and reopens, and the time it spent handling pushes. --browser-nice N adds a run with
   Chromium reniced, so the servers get the CPU first (Chromium shares this machine's cores).

Every process, temp dir, database and Redis db it made is removed at the end, also on Ctrl-C.
"""

import argparse
import contextlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.e2e.servers when run as bench/bench_live_latency.py

from tests.e2e import servers  # noqa: E402

DEMO = "kargo-demo"
PROBE = "bench-probe"  # the cheap Stage added to the demo project
BIG = "bench-big"  # the project of --stages Stages in lanes
TP = "bench-tp"  # the throughput project
ECHO_ASGI = str(ROOT / "bench" / "echo_asgi.py")
GOALS = {"demo": 1.5, "big": 3.0}  # product p95 at most this times the echo's p95
TP_GOAL = 0.9  # throughput with pages open at least this share of the one without

# Installed in every page besides servers.LIVE_PROBE: what the page's live pushes said. A push
# carrying data-resync is a re-sync; one whose numbers start past what the page had seen is a gap
# (live.js then asks for a re-sync).
BENCH_PROBE = """
window.__bench = {pushes: 0, resyncs: 0, gaps: 0, events: [], lastPushAt: null,
                  hidden: 0, visibility: []};
document.addEventListener('htmx:wsAfterMessage', () => {
  const b = window.__bench;
  if (b.lastPushAt !== null) b.handleMs = (b.handleMs || 0) + (Date.now() - b.lastPushAt);
});
try {
  new PerformanceObserver((list) => {
    const b = window.__bench;
    for (const e of list.getEntries()) { b.longMs = (b.longMs || 0) + e.duration; }
  }).observe({type: 'longtask', buffered: true});
} catch (e) {}
document.addEventListener('visibilitychange', () => {
  window.__bench.visibility.push([Date.now(), document.visibilityState]);
});
document.addEventListener('htmx:wsBeforeMessage', (e) => {
  const b = window.__bench;
  b.pushes += 1;
  b.lastPushAt = Date.now();
  (b.pushTimes = b.pushTimes || []).push(b.lastPushAt);
  if (document.visibilityState !== 'visible') b.hidden += 1;
  const m = /<div id="live-seq"([^>]*)>/.exec(String(e.detail.message));
  if (!m) return;
  const seq = Number((/data-seq="(\\d+)"/.exec(m[1]) || [])[1] || 0);
  const from = Number((/data-from="(\\d+)"/.exec(m[1]) || [])[1] || 0);
  const marker = document.getElementById('live-seq');
  const seen = marker ? Number(marker.dataset.seq || 0) : 0;
  if (/data-resync/.test(m[1])) {
    b.resyncs += 1;
    b.events.push([Date.now(), 'resync', seen, from, seq, String(e.detail.message).length]);
  } else if (from > seen + 1) {
    b.gaps += 1;
    b.events.push([Date.now(), 'gap', seen, from, seq]);
  }
});
document.addEventListener('htmx:wsClose', (e) => {
  const ev = e.detail && e.detail.event;
  window.__bench.events.push([Date.now(), 'close', ev ? ev.code : null, ev ? ev.reason : null]);
});
document.addEventListener('htmx:wsOpen', () => {
  window.__bench.events.push([Date.now(), 'open', document.visibilityState]);
});
"""

# What a Stage card shows, as the bench compares it.
CARD_STATE_JS = """
window.__cardState = (el) => {
  if (!el) return null;
  const text = (s) => { const e = el.querySelector(s); return e ? e.textContent.trim() : null; };
  const last = el.querySelector('.node-foot a[href*="/promotion/"]:not(.promo-progress)');
  const progress = el.querySelector('.promo-progress');
  return {
    phase: text('[data-testid=stage-phase]'),
    freight: [...el.querySelectorAll('[data-testid=stage-freight]')]
      .map((e) => e.textContent.trim().split(/\\s+/)[0]).join(','),
    progress: progress ? progress.getAttribute('href') : null,
    queued: text('.pill-wait'),
    last: last ? last.getAttribute('href').replace(/\\/$/, '').split('/').pop() : null,
    lastText: last ? last.textContent.trim().replace(/\\s+/g, ' ') : null,
  };
};
"""

# Arm the observer on one card: every replacement of the element with that id, with its time.
ARM_JS = """(cardId) => {
  if (window.__benchObs) window.__benchObs.disconnect();
  const rec = {events: []};
  let current = document.getElementById(cardId);
  const obs = new MutationObserver(() => {
    const el = document.getElementById(cardId);
    if (el && el !== current) {
      current = el;
      rec.events.push([Date.now(), window.__cardState(el)]);
    }
  });
  obs.observe(document.body, {subtree: true, childList: true});
  window.__benchObs = obs;
  window.__benchRec = rec;
}"""

# The Promote form's POST, from the page; the response is the redirect sent after the commit.
POST_JS = """async ([path, data, csrf]) => {
  const body = new URLSearchParams(data);
  const t0 = Date.now();
  const r = await fetch(path, {method: 'POST', redirect: 'manual',
                               headers: {'X-CSRFToken': csrf}, body});
  const t1 = Date.now();
  return {t0, t1, status: r.status, type: r.type};
}"""

# The first replacement of the card, at or after t0, that shows a promotion newer than prevLast.
FIRST_CHANGE_JS = """([t0, prevLast]) => {
  for (const [t, s] of window.__benchRec.events) {
    if (t >= t0 && s && (s.queued || s.progress || s.last !== prevLast)) return {t, s};
  }
  return null;
}"""

SETTLED_JS = """([cardId, prevLast]) => {
  const s = window.__cardState(document.getElementById(cardId));
  return s && !s.queued && !s.progress && s.last && s.last !== prevLast ? s : null;
}"""

ECHO_JS = """async (n) => {
  const rec = {t: null};
  const obs = new MutationObserver(() => {
    const el = document.getElementById('echo-target');
    if (rec.t === null && el && el.dataset.n === String(n)) { rec.t = Date.now(); obs.disconnect(); }
  });
  obs.observe(document.body, {subtree: true, childList: true});
  window.__echo = rec;
  const t0 = Date.now();
  const r = await fetch('/bench-echo/send', {method: 'POST', body: new URLSearchParams({n})});
  const t1 = Date.now();
  return {t0, t1, status: r.status};
}"""

ALL_CARDS_JS = """() => Object.fromEntries([...document.querySelectorAll('.node-stage')]
  .map((el) => [el.dataset.stage, window.__cardState(el)]))"""

FREIGHT_NAMES_JS = """() => Object.fromEntries([...document.querySelectorAll('li.freight-card')]
  .map((li) => [li.querySelector('.freight-label').textContent.trim(),
                li.querySelector('a.freight-link').getAttribute('href')
                  .replace(/\\/$/, '').split('/').pop()]))"""


def quietly(close) -> None:
    """Close a browser object; after Ctrl-C the Playwright driver may be gone already."""
    with contextlib.suppress(Exception):
        close()


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------


def cheap_stage(project: str, name: str, warehouse: str, upstream: str | None = None) -> str:
    sources = "direct: true" if upstream is None else f"stages: [{upstream}]"
    return f"""---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: {name}
  namespace: {project}
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: {warehouse}
    sources:
      {sources}
  promotionTemplate:
    spec:
      steps:
      - uses: compose-output
        as: out
        config:
          promoted: bench
"""


def project_docs(project: str, app_repo: Path) -> str:
    """A project, a Warehouse on the demo's app repository and Freight for v1.0.0 and v1.1.0."""
    docs = [
        f"""apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: {project}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: src
  namespace: {project}
spec:
  interval: 5m
  subscriptions:
  - git:
      repoURL: {app_repo.as_uri()}
      commitSelectionStrategy: SemVer
      semverConstraint: ">=1.0.0"
      discoveryLimit: 10
"""
    ]
    for hours, tag in ((2, "v1.0.0"), (1, "v1.1.0")):
        commit = subprocess.run(
            ["git", "-C", str(app_repo), "rev-list", "-n", "1", tag],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - hours * 3600))
        docs.append(f"""---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: {project}-{tag.replace(".", "-")}
  namespace: {project}
origin:
  kind: Warehouse
  name: src
commits:
- repoURL: {app_repo.as_uri()}
  id: {commit}
  tag: {tag}
discoveredAt: "{when}"
""")
    return "".join(docs)


def lanes_manifest(project: str, app_repo: Path, stages: int, lanes: int) -> tuple[str, list[str]]:
    """`stages` cheap Stages in `lanes` lanes: each lane's head takes Freight from the Warehouse,
    every other Stage from the one before it. Returns the text and the heads' names."""
    docs, heads = [project_docs(project, app_repo)], []
    per_lane = math.ceil(stages / lanes)
    made = 0
    for lane in range(lanes):
        prev = None
        for depth in range(per_lane):
            if made == stages:
                break
            name = f"l{lane:02d}-s{depth:02d}"
            docs.append(cheap_stage(project, name, "src", prev))
            if prev is None:
                heads.append(name)
            prev, made = name, made + 1
    return "".join(docs), heads


# --------------------------------------------------------------------------------------------
# Server processes (tests/e2e/servers.py, as the e2e fixtures start them)
# --------------------------------------------------------------------------------------------


@dataclass
class Servers:
    mode: str
    base_url: str
    env: dict
    data_dir: Path
    procs: list = field(default_factory=list)
    db_name: str = ""

    def manage(self, *args: str) -> str:
        return servers.manage(self.env, *args, timeout=600)

    def apply(self, name: str, text: str, project: str) -> None:
        """`manage.py kargo apply -f` the text, then `kargo grant` the demo user admin of
        `project`: both in one process (each `manage.py` start costs seconds on a busy machine)."""
        path = self.data_dir / name
        path.write_text(text)
        apply_and_grant(self.env, path, project)

    @property
    def app_repo(self) -> Path:
        return self.data_dir / "demo" / "repos" / "guestbook-app.git"

    def sql(self, query: str) -> list[list[str]]:
        if self.db_name:
            argv = ["psql", *servers.PG, "-d", self.db_name, "-At", "-F", "\t", "-c", query]
        else:
            argv = ["sqlite3", "-separator", "\t", str(self.data_dir / "db.sqlite3"), query]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise servers.ServerError(f"{argv[0]} failed: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines() if line]


def start(stack: contextlib.ExitStack, name: str, argv: list[str], env: dict, log_dir: Path):
    server = servers.ServerProcess(name, argv, env, log_dir)
    stack.callback(server.stop)
    return server


def temp_dir(stack: contextlib.ExitStack, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def shell(env: dict, code: str) -> str:
    """`manage.py shell -c CODE` in the servers' configuration."""
    return servers.manage(env, "shell", "-c", code, timeout=600)


def apply_and_grant(env: dict, path: Path, project: str, demo: bool = False) -> None:
    shell(
        env,
        "from django.core.management import call_command\n"
        + ("call_command('demo')\n" if demo else "")
        + f"call_command('kargo', 'apply', '-f', {str(path)!r})\n"
        + f"call_command('kargo', 'grant', '--project', {project!r}, '--user', 'demo', "
        "'--role', 'admin')\n",
    )


def seed(env: dict, data_dir: Path) -> None:
    """The demo (as servers.seed_demo: migrate, `manage.py demo`), and the cheap Stage the
    demo-size latency promotes into."""
    t0 = time.monotonic()
    servers.manage(env, "migrate", "--noinput", timeout=600)
    t1 = time.monotonic()
    path = data_dir / "probe.yaml"
    path.write_text(cheap_stage(DEMO, PROBE, "guestbook"))
    apply_and_grant(env, path, DEMO, demo=True)
    log(f"  seeded: migrate {t1 - t0:.0f} s, demo and probe Stage {time.monotonic() - t1:.0f} s")


def start_embedded(stack: contextlib.ExitStack) -> Servers:
    """`manage.py serve` (through bench/echo_asgi.py): daphne, Celery worker and beat in one
    process; SQLite, in-memory layer."""
    data_dir = temp_dir(stack, "kargo-bench-embedded-")
    env = servers.embedded_env(data_dir, secret_key="bench")
    seed(env, data_dir)
    port = servers.free_port()
    argv = [servers.PYTHON, ECHO_ASGI, "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = start(stack, "serve", argv, env, data_dir)
    base_url = f"http://127.0.0.1:{port}"
    server.wait_for_http(f"{base_url}/healthz")
    return Servers("embedded", base_url, env, data_dir, [server])


def start_scaled(stack: contextlib.ExitStack, workers: int) -> Servers:
    """daphne (web only, on bench.echo_asgi), `workers` Celery worker processes and Celery beat
    on PostgreSQL and Redis, with a database and a Redis db of their own."""
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
    seed(env, data_dir)
    port = servers.free_port()
    argv = [servers.DAPHNE, "-b", "127.0.0.1", "-p", str(port), "bench.echo_asgi:application"]
    daphne = start(stack, "daphne", argv, env, data_dir)
    procs = [daphne]
    for i in range(workers):
        argv = [*servers.worker_argv("WARNING"), "-n", f"bench{i + 1}@%h"]
        procs.append(start(stack, f"celery-worker-{i + 1}", argv, env, data_dir))
    procs.append(start(stack, "celery-beat", servers.beat_argv(data_dir), env, data_dir))
    base_url = f"http://127.0.0.1:{port}"
    daphne.wait_for_http(f"{base_url}/healthz")
    return Servers("scaled", base_url, env, data_dir, procs, db_name)


LOG_FINDING = re.compile(r"Traceback|ERROR|CRITICAL|WARNING|Error|lost|exception", re.I)
# Celery's start-up banner and its warning about running as root say nothing about the product.
LOG_NOISE = re.compile(r"superuser privileges|_warn_or_raise_security_error|logfile ->")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(srv: Servers) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each server's process group, and by this
    process's other descendants (Chromium and the Playwright driver): live processes only."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(")") + 2 :].split()
        stats[int(entry)] = (int(rest[1]), int(rest[2]), (int(rest[11]) + int(rest[12])))
    groups = {proc.pid: proc.name for proc in srv.procs}
    out = dict.fromkeys([*groups.values(), "browser"], 0.0)
    children: dict[int, list[int]] = {}
    for pid, (ppid, pgrp, ticks) in stats.items():
        children.setdefault(ppid, []).append(pid)
        if pgrp in groups:
            out[groups[pgrp]] += ticks / CLOCK_TICKS
    frontier = list(children.get(os.getpid(), []))
    while frontier:
        pid = frontier.pop()
        frontier += children.get(pid, [])
        if stats[pid][1] not in groups:
            out["browser"] += stats[pid][2] / CLOCK_TICKS
            kind = f"browser:{chromium_type(pid)}"
            out[kind] = out.get(kind, 0.0) + stats[pid][2] / CLOCK_TICKS
    return out


def descendants(exclude_groups: set[int] = frozenset()) -> list[int]:
    """This process's descendants, outside the process groups `exclude_groups`."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    data = f.read()
            except OSError:
                continue
            rest = data[data.rfind(")") + 2 :].split()
            stats[int(entry)] = (int(rest[1]), int(rest[2]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, frontier = [], list(children.get(os.getpid(), []))
    while frontier:
        pid = frontier.pop()
        frontier += children.get(pid, [])
        if stats[pid][1] not in exclude_groups:
            out.append(pid)
    return out


def renice_browser(srv: Servers, nice: int) -> None:
    """Every Chromium process this bench started (not the servers, not the Playwright driver)
    to `nice`: the servers then get the CPU first, and the run shows what live pages cost the
    servers rather than what rendering them costs this shared machine."""
    for pid in descendants({proc.pid for proc in srv.procs}):
        if chromium_type(pid) != "driver":
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, nice)


def chromium_type(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return "?"
    m = re.search(rb"--type=([a-z-]+)", cmd)
    if m:
        return m.group(1).decode()
    return "main" if b"chromium" in cmd else "driver"


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def log_findings(srv: Servers) -> list[str]:
    """Lines of the servers' logs that say something went wrong, counted by process."""
    out = []
    for proc in srv.procs:
        lines = [
            line
            for line in proc.log().splitlines()
            if LOG_FINDING.search(line) and not LOG_NOISE.search(line)
        ]
        if not lines:
            continue
        distinct = list(dict.fromkeys(re.sub(r"\d", "#", line)[:220] for line in lines))
        out.append(f"{proc.name}: {len(lines)} line(s), {len(distinct)} distinct, e.g.:")
        out += [f"    {line}" for line in distinct[:6]]
    return out


# --------------------------------------------------------------------------------------------
# The browser side
# --------------------------------------------------------------------------------------------


@dataclass
class Browser:
    """The logged-in session (`context`, used for cookies and API requests), and pages each in
    a browser context of their own with that session's cookies, as separate windows.

    Chromium runs the renderer of a page that is not its window's front tab at nice 5 (even
    with --disable-renderer-backgrounding): on a busy machine such a page fell 25 s behind its
    pushes and daphne dropped its socket for missed pongs. A window per page keeps every
    renderer at the same priority, so the pages compare with each other and with the echo."""

    browser: object
    context: object
    base_url: str
    console: list[str] = field(default_factory=list)

    def new_page(self, label: str) -> Page:
        context = self.browser.new_context(storage_state=self.context.storage_state())
        add_probes(context)
        page = context.new_page()

        def on_console(msg, label=label):
            if msg.type in ("error", "warning"):
                self.console.append(f"{label}: console.{msg.type}: {msg.text[:200]}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc, label=label: self.console.append(f"{label}: {exc}"))
        return page

    def csrf(self) -> str:
        for cookie in self.context.cookies():
            if cookie["name"] == "csrftoken":
                return cookie["value"]
        raise RuntimeError("no csrftoken cookie in the browser")

    def open_live(self, page: Page, path: str) -> None:
        page.goto(f"{self.base_url}{path}", timeout=120_000)
        # Predicates are functions: a string one is eval'ed while polling, which the
        # dashboard's Content Security Policy refuses.
        page.wait_for_function(
            "() => window.__kargo && window.__kargo.wsOpen > 0", timeout=30_000, polling=100
        )

    def quiet(self, page: Page, quiet_s: float = 0.4, limit_s: float = 5.0) -> None:
        """Wait until the page's socket has received nothing for `quiet_s`."""
        deadline = time.monotonic() + limit_s
        last, since = page.evaluate("window.__kargo.wsMessages"), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = page.evaluate("window.__kargo.wsMessages")
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return


def add_probes(context) -> None:
    context.add_init_script(servers.LIVE_PROBE)
    context.add_init_script(BENCH_PROBE)
    context.add_init_script(CARD_STATE_JS)
    context.set_default_timeout(30_000)


def close_page(page: Page) -> None:
    quietly(page.close)
    quietly(page.context.close)


def renderer_nice() -> dict[int, int]:
    """How many of this process's Chromium renderers run at each nice value."""
    out: dict[int, int] = {}
    for pid in descendants():
        if chromium_type(pid) != "renderer":
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        nice = int(data[data.rfind(")") + 2 :].split()[16])
        out[nice] = out.get(nice, 0) + 1
    return out


def new_browser(browser, base_url: str) -> Browser:
    context = browser.new_context()
    add_probes(context)
    b = Browser(browser, context, base_url)
    page = context.new_page()
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}/")
    page.close()
    return b


# --------------------------------------------------------------------------------------------
# 1. Commit -> DOM, beside the echo
# --------------------------------------------------------------------------------------------


def nearest_rank(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def product_change(b: Browser, page: Page, project: str, stage: str, card_id: str, freight: str):
    prev = page.evaluate("(id) => window.__cardState(document.getElementById(id))", card_id)
    page.evaluate(ARM_JS, card_id)
    path = f"/project/{project}/stage/{stage}/promote"
    r = page.evaluate(POST_JS, [path, {"freight": freight}, b.csrf()])
    if r["type"] != "opaqueredirect":
        raise RuntimeError(f"promote {stage} answered {r['status']} ({r['type']}), not a redirect")
    try:
        handle = page.wait_for_function(
            FIRST_CHANGE_JS, arg=[r["t0"], prev["last"]], timeout=20_000, polling="raf"
        )
        first = handle.json_value()
    except Exception:
        first = None
    try:
        page.wait_for_function(SETTLED_JS, arg=[card_id, prev["last"]], timeout=60_000, polling=50)
    except Exception:
        log(f"    note: {stage} did not show its promotion finished within 60 s")
    b.quiet(page)
    during = page.evaluate(
        "([t0, t]) => window.__bench.events.filter(([at]) => at >= t0 && at <= t).map((e) => e[1])",
        [r["t0"], first["t"] if first else r["t0"] + 60_000],
    )
    if first is None:
        return {
            "post": None,
            "resp": None,
            "rtt": r["t1"] - r["t0"],
            "seen": "nothing",
            "during": during,
        }
    s = first["s"]
    seen = "queued" if s["queued"] else "running" if s["progress"] else "done"
    return {
        "post": first["t"] - r["t0"],
        "resp": first["t"] - r["t1"],
        "rtt": r["t1"] - r["t0"],
        "seen": seen,
        "during": during,
    }


def echo_change(page: Page, n: int) -> dict:
    r = page.evaluate(ECHO_JS, n)
    if r["status"] != 200:
        raise RuntimeError(f"echo send answered {r['status']}")
    page.wait_for_function("() => window.__echo.t !== null", timeout=10_000, polling="raf")
    t = page.evaluate("window.__echo.t")
    return {"post": t - r["t0"], "resp": t - r["t1"], "rtt": r["t1"] - r["t0"]}


def latency(
    b: Browser, srv: Servers, size: str, project: str, stages: list[str], n: int, warmup: int
) -> dict:
    t_start, load = time.monotonic(), os.getloadavg()[0]
    page = b.new_page(f"{srv.mode}/{size}/project")
    b.open_live(page, f"/project/{project}/")
    stage_count = page.locator(".node-stage").count()
    names = page.evaluate(FREIGHT_NAMES_JS)
    freights = [names[label] for label in ("v1.0.0", "v1.1.0") if label in names]
    if not freights:
        raise RuntimeError(f"no v1.0.0/v1.1.0 Freight on /project/{project}/: {names}")
    card_ids = {
        s: page.get_attribute(f'.node-stage[data-stage="{s}"]', "id", timeout=10_000)
        for s in stages
    }
    echo = b.new_page(f"{srv.mode}/{size}/echo")
    b.open_live(echo, "/bench-echo/")
    b.quiet(page, limit_s=10)
    nice = renderer_nice()
    product, anchor = [], []
    for i in range(-warmup, n):
        stage = stages[i % len(stages)]
        p = product_change(b, page, project, stage, card_ids[stage], freights[i % len(freights)])
        e = echo_change(echo, i + 1 + warmup)
        if i < 0:
            log(
                f"  {srv.mode:<8} {size:<5} warm-up: product {fmt(p['post'])} ms, echo "
                f"{fmt(e['post'])} ms (not counted)"
            )
            continue
        product.append(p)
        anchor.append(e)
        log(
            f"  {srv.mode:<8} {size:<5} {i + 1:>3}  product {fmt(p['post']):>5} ms "
            f"(after response {fmt(p['resp']):>5}, saw {p['seen']:<7}) echo {fmt(e['post']):>4} ms"
            + (f"  [{', '.join(p['during'])} before it]" if p["during"] else "")
        )
    stats = page.evaluate("({...window.__kargo, ...window.__bench})")
    close_page(page)
    close_page(echo)
    return {
        "mode": srv.mode,
        "size": size,
        "stages": stage_count,
        "product": product,
        "echo": anchor,
        "page": stats,
        "seconds": time.monotonic() - t_start,
        "load": (load, os.getloadavg()[0]),
        "nice": nice,
    }


# --------------------------------------------------------------------------------------------
# 2. Throughput with and without live pages
# --------------------------------------------------------------------------------------------


def queue_order(stages: list[str], freights: list[str], n: int) -> list[tuple[str, str]]:
    """(stage, freight) of `n` promotions: the Stages in turn, the Freight alternating by round."""
    return [
        (stages[i % len(stages)], freights[(i // len(stages)) % len(freights)]) for i in range(n)
    ]


QUEUE_SHELL = """
import json
from freight.models import Freight
from stages.actions import do_promote
from stages.models import Stage
order = json.loads(ORDER)
stages = {s.name: s for s in Stage.objects.filter(project__name=PROJECT)}
freight = {f.name: f for f in Freight.objects.filter(project__name=PROJECT)}
for stage, name in order:
    do_promote(stages[stage], freight[name], actor="bench-throughput")
print(len(order))
"""


def queue_promotions_shell(srv: Servers, order: list[tuple[str, str]]) -> None:
    """One `manage.py shell` calling stages.actions.do_promote per promotion, each committed on
    its own (the path of `manage.py kargo promote`)."""
    code = f"ORDER = {json.dumps(json.dumps(order))}\nPROJECT = {TP!r}\n" + QUEUE_SHELL
    shell(srv.env, code)


def queue_promotions_http(b: Browser, order: list[tuple[str, str]]) -> None:
    """The promotions POSTed as the Promote form does, from the browser context (its session and
    CSRF token), no page involved."""
    csrf = b.csrf()
    for stage, freight in order:
        r = b.context.request.post(
            f"{b.base_url}/project/{TP}/stage/{stage}/promote",
            form={"freight": freight},
            headers={"X-CSRFToken": csrf, "Referer": f"{b.base_url}/project/{TP}/"},
            max_redirects=0,
        )
        if r.status != 302 or "/promotion/" not in r.headers.get("location", ""):
            raise RuntimeError(f"promote {stage}: {r.status} {r.text()[:300]}")


def tp_run(
    b: Browser,
    srv: Servers,
    stages: list[str],
    freights,
    n: int,
    pages: int,
    how: str,
    browser_nice: int | None = None,
):
    t_start, load = time.monotonic(), os.getloadavg()[0]
    live = []
    for k in range(pages):
        page = b.new_page(f"tp-page-{k + 1}")
        b.open_live(page, f"/project/{TP}/")
        page.evaluate("window.__notReloaded = true")
        live.append(page)
    for page in live:
        b.quiet(page, limit_s=5)
    if browser_nice is not None:
        renice_browser(srv, browser_nice)
    nice = renderer_nice()
    cpu_before, wall_before = cpu_seconds(srv), time.monotonic()
    (watermark,) = srv.sql("select coalesce(max(id), 0) from stages_promotion")[0]
    watermark = int(watermark)
    where = (
        f"p.id > {watermark} and p.project_id = (select id from projects_project "
        f"where name = '{TP}')"
    )
    order = queue_order(stages, freights, n)
    if how == "http":
        queue_promotions_http(b, order)
    else:
        queue_promotions_shell(srv, order)
    deadline = time.monotonic() + 600
    while True:
        rows = srv.sql(f"select p.phase, count(*) from stages_promotion p where {where} group by 1")
        phases = {phase: int(c) for phase, c in rows}
        open_ = phases.get("Pending", 0) + phases.get("Running", 0)
        if sum(phases.values()) >= n and open_ == 0:
            break
        if time.monotonic() > deadline:
            log(f"    note: promotions still open after 600 s: {phases}")
            break
        time.sleep(0.5)
    ended = time.monotonic()
    cpu = cpu_delta(cpu_before, cpu_seconds(srv))
    span, created = srv.sql(
        "select extract(epoch from max(p.finished_at) - min(p.created_at)), "
        "extract(epoch from max(p.created_at) - min(p.created_at)) "
        f"from stages_promotion p where {where}"
    )[0]
    span = float(span)
    result = {
        "pages": pages,
        "n": n,
        "span": span,
        "rate": n / span if span > 0 else float("nan"),
        "phases": phases,
        "queued_s": float(created),
        "cpu": cpu,
        "nice": nice,
        "browser_nice": browser_nice,
        "wall": ended - wall_before,
        "load": load,
    }
    if live:
        result.update(check_pages(b, srv, live, stages, ended))
    for page in live:
        close_page(page)
    result["seconds"] = time.monotonic() - t_start
    return result


def check_pages(b: Browser, srv: Servers, live, stages, ended: float) -> dict:
    """Every live page's cards: first against the database (each Stage's newest promotion shown
    as its last, nothing queued or running) until all agree or 30 s have passed since the last
    promotion ended; then in full (phase, Freight, last promotion, queue) against a page loaded
    now."""
    db_last = dict(
        srv.sql(
            "select s.name, p.name from stages_stage s join stages_promotion p on p.id = "
            "(select max(id) from stages_promotion q where q.stage_id = s.id) "
            f"where s.project_id = (select id from projects_project where name = '{TP}')"
        )
    )

    def behind(page) -> list[str]:
        cards = page.evaluate(ALL_CARDS_JS)
        return [
            s
            for s in stages
            if not cards.get(s)
            or cards[s]["last"] != db_last.get(s)
            or cards[s]["queued"]
            or cards[s]["progress"]
        ]

    converge = None
    while True:
        late = [behind(page) for page in live]
        if not any(late):
            converge = time.monotonic() - ended
            break
        if time.monotonic() - ended > 30:
            break
        time.sleep(0.2)
    fresh = b.new_page("tp-fresh")
    fresh.goto(f"{b.base_url}/project/{TP}/")
    truth = {s: v for s, v in fresh.evaluate(ALL_CARDS_JS).items() if s in stages}
    close_page(fresh)
    truth_vs_db = sum(1 for s in stages if truth.get(s, {}).get("last") != db_last.get(s))
    keys = ("phase", "freight", "progress", "queued", "last")
    per_page = []
    for page, still_behind in zip(live, late, strict=True):
        cards = page.evaluate(ALL_CARDS_JS)
        differ = [
            s for s in stages if not cards.get(s) or any(cards[s][k] != truth[s][k] for k in keys)
        ]
        stats = page.evaluate(
            "({...window.__kargo, ...window.__bench, same: window.__notReloaded === true})"
        )
        per_page.append({"behind": still_behind, "stale": differ, **stats})
    return {
        "truth_vs_db": truth_vs_db,
        "truth": truth,
        "converge": converge,
        "per_page": per_page,
    }


def throughput(b: Browser, srv: Servers, args) -> list[dict]:
    text = project_docs(TP, srv.app_repo) + "".join(
        cheap_stage(TP, f"s{i:02d}", "src") for i in range(args.tp_stages)
    )
    srv.apply("tp.yaml", text, TP)
    stages = [f"s{i:02d}" for i in range(args.tp_stages)]
    page = b.new_page("tp-setup")
    page.goto(f"{b.base_url}/project/{TP}/")
    names = page.evaluate(FREIGHT_NAMES_JS)
    close_page(page)
    freights = [names["v1.0.0"], names["v1.1.0"]]
    out = []
    runs = [(0, None), (args.pages, None)]
    if args.browser_nice is not None:
        runs.append((args.pages, args.browser_nice))
    for pages, nice in runs:
        log(f"  scaled   throughput: {args.promotions} promotions, {pages} live pages ...")
        r = tp_run(b, srv, stages, freights, args.promotions, pages, args.queue, nice)
        log(
            f"  scaled   throughput: {pages:>2} pages{'' if nice is None else f' (Chromium at nice {nice})'}"
            f"  {r['rate']:.2f}/s  "
            f"({r['n']} in {r['span']:.1f} s, {r['phases']}, created over {r['queued_s']:.1f} s)"
        )
        out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# A mode
# --------------------------------------------------------------------------------------------


def run_mode(mode: str, browser, args) -> dict:
    with contextlib.ExitStack() as stack:
        t0 = time.monotonic()
        srv = start_embedded(stack) if mode == "embedded" else start_scaled(stack, args.workers)
        log(f"  {mode}: servers up in {time.monotonic() - t0:.0f} s ({srv.base_url})")
        result: dict = {"mode": mode, "latency": [], "throughput": [], "console": [], "logs": []}
        b = None
        try:
            b = new_browser(browser, srv.base_url)
            stack.callback(quietly, b.context.close)
            if "demo" in args.sizes:
                result["latency"].append(
                    latency(b, srv, "demo", DEMO, [PROBE], args.changes, args.warmup)
                )
            if mode == "scaled" and not args.no_throughput:
                result["throughput"] = throughput(b, srv, args)
            if "big" in args.sizes:
                t1 = time.monotonic()
                text, heads = lanes_manifest(BIG, srv.app_repo, args.stages, args.lanes)
                srv.apply("big.yaml", text, BIG)
                log(f"  {mode}: {args.stages} Stages applied in {time.monotonic() - t1:.0f} s")
                result["latency"].append(
                    latency(b, srv, "big", BIG, heads, args.changes, args.warmup)
                )
        except BaseException:
            for proc in srv.procs:
                sys.stderr.write(f"\n===== {proc.name} log (last lines) =====\n{proc.tail(60)}\n")
            raise
        finally:
            if b is not None:
                result["console"] = b.console
            result["logs"] = log_findings(srv)
            if args.keep_logs:
                keep = Path(args.keep_logs)
                keep.mkdir(parents=True, exist_ok=True)
                for proc in srv.procs:
                    shutil.copy(proc.log_path, keep / f"{mode}-{proc.name}.log")
        return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def summarize(values: list) -> tuple:
    v = [x for x in values if x is not None]
    if not v:
        return None, None, 0
    return statistics.median(v), nearest_rank(v, 0.95), len(v)


def print_report(results: list[dict], args) -> None:
    log("")
    log("=" * 100)
    log("1. DB commit -> DOM updated in Chromium (ms; 'sent' = from just before the POST left the")
    log("   page, 'resp' = from its response, which is sent after the commit). Anchor: the bare")
    log("   Channels echo (POST -> group_send -> consumer -> htmx ws swap), same server, same run.")
    log(
        f"   Goals: product p95 <= {GOALS['demo']}x echo p95 at demo size, "
        f"<= {GOALS['big']}x at {args.stages} Stages."
    )
    log("")
    log(
        f"{'mode':<9}{'size':<6}{'stages':>6} {'n':>3} | {'sent med':>8} {'p95':>6} | "
        f"{'resp med':>8} {'p95':>6} | {'echo med':>8} {'p95':>5} | {'p95 ratio':>9} {'goal':>5} | "
        f"missed"
    )
    for r in results:
        for lat in r["latency"]:
            pm, pp, pn = summarize([x["post"] for x in lat["product"]])
            rm, rp, _ = summarize([x["resp"] for x in lat["product"]])
            em, ep, _ = summarize([x["post"] for x in lat["echo"]])
            ratio = pp / ep if pp is not None and ep else None
            missed = sum(1 for x in lat["product"] if x["post"] is None)
            goal = GOALS[lat["size"]]
            log(
                f"{lat['mode']:<9}{lat['size']:<6}{lat['stages']:>6} {pn:>3} | {fmt(pm):>8} "
                f"{fmt(pp):>6} | {fmt(rm):>8} {fmt(rp):>6} | {fmt(em, 1):>8} {fmt(ep, 1):>5} | "
                f"{fmt(ratio, 1) + 'x' if ratio else '-':>9} {str(goal) + 'x':>5} | {missed}"
            )
    log("")
    for r in results:
        for lat in r["latency"]:
            rtt = summarize([x["rtt"] for x in lat["product"]])
            ertt = summarize([x["rtt"] for x in lat["echo"]])
            seen = {}
            for x in lat["product"]:
                seen[x["seen"]] = seen.get(x["seen"], 0) + 1
            p = lat["page"]
            log(
                f"  {lat['mode']}/{lat['size']}: promote POST round trip median {fmt(rtt[0])} ms "
                f"(echo POST {fmt(ertt[0], 1)} ms); first card seen {seen}; page: pushes "
                f"{p.get('pushes')}, re-syncs {p.get('resyncs')}, gaps {p.get('gaps')}, ws opens "
                f"{p.get('wsOpen')} closes {p.get('wsClose')}, oobMissing {len(p.get('oobMissing', []))}"
                f"; {lat['seconds']:.0f} s, load average {lat['load'][0]:.1f} -> {lat['load'][1]:.1f}"
                f"; renderers by nice {lat['nice']}"
            )
    tps = [(r["mode"], r["throughput"]) for r in results if r["throughput"]]
    if tps:
        log("")
        log(
            f"2. Throughput with {args.pages} live pages vs none (scaled, {args.workers} Celery "
            f"worker processes x 2 threads; {args.promotions} promotions over {args.tp_stages} "
            f"cheap Stages, queued via {args.queue}; first created -> last finished). "
            f"Goal: 0 lost, ratio >= {TP_GOAL}."
        )
        for mode, runs in tps:
            base = runs[0]
            for run in runs:
                ratio = run["rate"] / base["rate"] if base["rate"] else float("nan")
                nice = run["browser_nice"]
                log(
                    f"  {mode:<8} {run['pages']:>2} pages"
                    f"{'' if nice is None else f' (Chromium at nice {nice})'}: "
                    f"{run['rate']:6.2f} promotions/s "
                    f"({run['n']} in {run['span']:.1f} s; {run['phases']}) ratio {ratio:.2f}; "
                    f"load average at start {run['load']:.1f}"
                )
                cpu = ", ".join(f"{k} {v:.1f}" for k, v in run["cpu"].items())
                log(f"             CPU seconds over its {run['wall']:.0f} s: {cpu}")
                log(f"             Chromium renderers by nice value: {run['nice']}")
            for run in runs[1:]:
                pages = run.get("per_page", [])
                stale = [len(p["stale"]) for p in pages]
                log(
                    f"  pages showing every Stage's final state: "
                    f"{sum(1 for s in stale if s == 0)}/{len(pages)}; stale cards per page "
                    f"{stale}; all pages showed every Stage's newest promotion finished "
                    f"{fmt(run['converge'], 1)} s after the bench saw the last one end in the "
                    f"database ('-': not within 30 s); freshly loaded page vs database: "
                    f"{run['truth_vs_db']} mismatches"
                )
                log(
                    "  per page re-syncs "
                    f"{[p.get('resyncs') for p in pages]}, gaps {[p.get('gaps') for p in pages]}, "
                    f"ws reconnects {[p.get('wsOpen', 1) - 1 for p in pages]}, ws closes "
                    f"{[p.get('wsClose') for p in pages]}, pushes {[p.get('pushes') for p in pages]}, "
                    f"ms handling pushes {[round(p.get('handleMs') or 0) for p in pages]} "
                    f"(per push {[round((p.get('handleMs') or 0) / max(p['pushes'], 1)) for p in pages]}), "
                    f"pushes handled while hidden {[p.get('hidden') for p in pages]}, "
                    f"ms in long tasks {[round(p.get('longMs') or 0) for p in pages]}, "
                    f"reloaded {[not p.get('same') for p in pages]}, oobMissing "
                    f"{[len(p.get('oobMissing', [])) for p in pages]}"
                )
                t0 = min((e[0] for p in pages for e in p["events"]), default=0)
                for k, p in enumerate(pages):
                    if p["stale"]:
                        s = p["stale"][0]
                        log(f"    page {k + 1} stale e.g. {s}: truth {run['truth'].get(s)}")
                    for e in p["events"]:
                        if e[1] == "close":
                            shown = [t for t in p["pushTimes"] if t < e[0]]
                            log(
                                f"    page {k + 1}: socket closed ({e[2]}) at "
                                f"{(e[0] - t0) / 1000:.1f} s, its last push arrived "
                                f"{(e[0] - shown[-1]) / 1000 if shown else float('nan'):.1f} s "
                                "before"
                            )
                        elif e[1] in ("resync", "gap"):
                            log(
                                f"    page {k + 1}: {e[1]} at {(e[0] - t0) / 1000:.1f} s: page had "
                                f"seen change {e[2]}, push from {e[3]} to {e[4]}"
                            )
    log("")
    for r in results:
        log(f"{r['mode']}: browser console errors/warnings: {len(r['console'])}")
        for line in list(dict.fromkeys(r["console"]))[:8]:
            log(f"    {line}")
        log(f"{r['mode']}: server log lines that look like trouble:")
        for line in r["logs"] or ["    none"]:
            log(f"  {line}")


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
    parser.add_argument("--changes", type=int, default=30, help="changes per latency figure")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted changes first")
    parser.add_argument(
        "--sizes", default="demo,big", help="demo and/or big (--stages Stages), or none"
    )
    parser.add_argument("--stages", type=int, default=500)
    parser.add_argument("--lanes", type=int, default=25)
    parser.add_argument("--promotions", type=int, default=200)
    parser.add_argument("--tp-stages", type=int, default=20)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="scaled: Celery worker processes")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the server logs here")
    parser.add_argument(
        "--browser-nice",
        type=int,
        metavar="N",
        help="throughput: one more run with the pages open and Chromium reniced to N (e.g. 19), "
        "so the servers get the CPU first",
    )
    parser.add_argument(
        "--queue",
        choices=("shell", "http"),
        default="shell",
        help="throughput: queue with one `manage.py shell` calling do_promote (default), or by "
        "POSTing the Promote form (then the web process's request handling bounds the rate)",
    )
    args = parser.parse_args()
    args.sizes = {s.strip() for s in args.sizes.split(",")}
    if not os.path.exists(servers.CHROMIUM):
        sys.exit(
            f"{servers.CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        )
    # Ctrl-C and `kill` unwind every ExitStack: servers stopped, databases dropped, dirs removed.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    cpus = len(os.sched_getaffinity(0))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"nproc: {cpus}  load: {load}  python: {platform.python_version()} ({sys.executable})")
    coalesce = os.environ.get("KARGO_LIVE_COALESCE_SECONDS", "0.15 (default)")
    print(f"coalesce window (KARGO_LIVE_COALESCE_SECONDS): {coalesce}")
    modes = ["embedded", "scaled"] if args.mode == "both" else [args.mode]
    results: list[dict] = []
    started = time.monotonic()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=servers.CHROMIUM, headless=True, args=servers.CHROMIUM_ARGS
            )
            try:
                for mode in modes:
                    try:
                        results.append(run_mode(mode, browser, args))
                    except servers.Unavailable as exc:
                        print(f"{mode:<9} skipped: {exc}")
            finally:
                quietly(browser.close)
    except BaseException:
        if not _interrupted:
            if results:
                print_report(results, args)
            raise
        print("\ninterrupted: servers stopped, temporary databases and directories removed")
        sys.exit(130)
    if results:
        print_report(results, args)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
