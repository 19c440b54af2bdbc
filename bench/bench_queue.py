"""The promotion queue: how soon a promotion created in another process starts running, and how
many promotions a scaled cluster runs per second, each beside the bare Celery figure it is bound by.

Run: .venv/bin/python bench/bench_queue.py [--mode embedded|scaled|both] [--samples 20]
     [--promotions 1000] [--stages 100] [--workers 4] [--label after]

(a) Latency, in both runtime modes. A `manage.py shell` process (as the CLI is: another process
    than the server) promotes a one-step Freight (compose-output) into a Stage, `--samples` times,
    one at a time, a random 0.2-0.7 s apart; for each it reads the promotion's own timestamps:
    created -> Running (started_at: when the dashboard shows it Running) and created -> Succeeded.
    Anchor: one trivial Celery task's trip, sent -> started, on the same broker (embedded: an
    in-process worker on the memory:// broker with the serve process's polling; scaled: Redis
    and the same 4 worker processes).
(b) Throughput, scaled mode only: `--promotions` one-step promotions queued round-robin over
    `--stages` Stages while no worker runs, then `--workers` worker processes (threads, 2 each, as
    the tests run them) started; promotions per second from the first start to the last finish,
    beside the ceiling of as many trivial tasks through the same broker and workers. Checked:
    0 lost (every promotion Succeeded), 0 run twice (each claimed once, by the workers' "runs
    promotion" log lines, and never resumed), 0 out of order (per Stage, each promotion started
    after the one created before it had finished). Sampled every 0.5 s meanwhile: how many
    promotions are Running, and how many of those no worker has claimed (shown Running while
    nothing runs them); and per promotion, queued time (created -> Running) and the time from
    Running to its worker's "runs promotion" line.

Prints figures and asserts nothing; not part of the test run. Every process, temp dir, database
and Redis database it made is removed at the end, also on Ctrl-C. To measure an older commit,
run its copy of this file with PYTHONPATH pointing at that checkout (the venv's editable install
would otherwise import this one).
"""

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.e2e.servers when run as bench/bench_queue.py

from tests.e2e import servers  # noqa: E402

# --------------------------------------------------------------------------------------------
# Code run in `manage.py shell` in the servers' configuration (parameters are prepended)
# --------------------------------------------------------------------------------------------

# A project whose Stages each run one cheap step, and one Freight they can all take directly.
# The Warehouse is marked discovered, so no discovery runs during the bench.
SETUP = """
import json
from django.utils import timezone
from freight.actions import do_create_freight
from freight.models import Warehouse
from kargo.specs import StageSpec, WarehouseSpec, dump
from projects.actions import do_create_project
from stages.actions import do_init_stage_status
from stages.models import Stage

project = do_create_project("bench", actor="bench")
warehouse = Warehouse.objects.create(
    project=project,
    name="source",
    spec=dump(WarehouseSpec.model_validate({
        "interval": "24h",
        "subscriptions": [{"git": {"repoURL": "file:///nonexistent/bench.git"}}],
    })),
)
Warehouse.objects.filter(id=warehouse.id).update(
    last_discovery_at=timezone.now(), status={"observedGeneration": warehouse.generation}
)
spec = dump(StageSpec.model_validate({
    "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "source"}, "sources": {"direct": True}}],
    "promotionTemplate": {"spec": {"steps": [
        {"uses": "compose-output", "as": "out", "config": {"freight": "${{ ctx.targetFreight.name }}"}}
    ]}},
}))
for i in range(STAGES):
    do_init_stage_status(Stage.objects.create(project=project, name=f"s{i:03d}", spec=spec))
do_create_freight(
    project, "source", commits=[{"repoURL": "file:///nonexistent/bench.git", "id": "a" * 40, "tag": "v1.0.0"}],
    actor="bench",
)
print(json.dumps({"stages": STAGES}))
"""

# One promotion at a time, each waited for, read back from the database.
LATENCY = """
import json, random, time
from freight.models import Freight
from stages.actions import do_promote
from stages.models import Promotion, Stage

stages = list(Stage.objects.filter(project__name="bench").order_by("name")[:5])
freight = Freight.objects.get(project__name="bench")
rng = random.Random(SEED)
rows = []
for i in range(SAMPLES):
    time.sleep(rng.uniform(0.2, 0.7))  # off any beat of the server's periodic work
    promotion = do_promote(stages[i % len(stages)], freight, actor="bench-latency")
    deadline = time.monotonic() + 60
    while True:
        row = Promotion.objects.filter(id=promotion.id).values(
            "phase", "created_at", "started_at", "finished_at"
        ).get()
        if row["phase"] not in ("Pending", "Running") or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    def ms(at):
        return None if at is None else (at - row["created_at"]).total_seconds() * 1000
    rows.append({"phase": row["phase"], "running": ms(row["started_at"]), "done": ms(row["finished_at"])})
print(json.dumps(rows))
"""

# The embedded anchor: a trivial task through the memory:// broker to a worker thread of this
# process, configured as `manage.py serve` configures its own.
LOCAL_ANCHOR = """
import json, os, random, sys, threading, time
from kargo_ui.celery import app

events, started = {}, {}

@app.task(name="bench.local_ping")
def local_ping(n):
    started[n] = time.perf_counter()
    events[n].set()

worker = app.WorkController(
    pool_cls="threads", concurrency=4, without_heartbeat=True, without_mingle=True,
    without_gossip=True, loglevel="WARNING",
)
threading.Thread(target=worker.start, daemon=True).start()
rng = random.Random(SEED)
out = []
for n in range(SAMPLES + 1):
    time.sleep(rng.uniform(0.05, 0.3))
    events[n] = threading.Event()
    sent = time.perf_counter()
    local_ping.delay(n)
    if events[n].wait(10) and n:  # the first one waits for the worker to be up
        out.append((started[n] - sent) * 1000)
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)  # the worker's threads would keep the process alive
"""

# Load: promotions queued round-robin over every Stage.
QUEUE = """
from freight.models import Freight
from stages.actions import do_promote
from stages.models import Stage

stages = list(Stage.objects.filter(project__name="bench").order_by("name"))
freight = Freight.objects.get(project__name="bench")
for i in range(COUNT):
    do_promote(stages[i % len(stages)], freight, actor="bench-load")
print(COUNT)
"""

REPORT = """
import json
from stages.models import Promotion

rows = [
    {"name": p.name, "stage": p.stage.name, "phase": p.phase, "resumes": p.resumes,
     "created": p.created_at.isoformat(), "started": p.started_at and p.started_at.isoformat(),
     "finished": p.finished_at and p.finished_at.isoformat(), "id": p.id}
    for p in Promotion.objects.filter(actor="bench-load").select_related("stage")
]
print(json.dumps(rows))
"""

# Imported by the scaled workers (celery --include): the bare task of the anchor and the ceiling.
# It records when it started, in Redis, for the bench to read.
PING_MODULE = """
import os, time
import redis
from celery import shared_task

_redis = redis.Redis.from_url(os.environ["REDIS_URL"])

@shared_task(name="bench.ping", ignore_result=True)
def ping(key, n, sent):
    _redis.rpush(key, f"{n} {sent} {time.time()}")
"""


def shell(env: dict, code: str, **params) -> object:
    """Run `code` in `manage.py shell` with `params` defined; its last output line, as JSON."""
    prefix = "".join(f"{name} = {value!r}\n" for name, value in params.items())
    out = servers.manage(env, "shell", "-c", prefix + code, timeout=900)
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(mode: str, what: str, values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return f"{mode:<9} {what:<56} {'-':>8} {'-':>8}   (none)"
    return (
        f"{mode:<9} {what:<56} {statistics.median(got):>8.0f} {percentile(got, 95):>8.0f}"
        f"   n={len(got)}"
    )


def report_latency(mode: str, anchor: list[float], rows: list[dict], anchor_name: str) -> None:
    print(line(mode, f"anchor: bare task sent -> started ({anchor_name})", anchor), flush=True)
    print(line(mode, "CLI promotion created -> Running", [r["running"] for r in rows]))
    print(line(mode, "CLI promotion created -> Succeeded", [r["done"] for r in rows]))
    bad = Counter(r["phase"] for r in rows if r["phase"] != "Succeeded")
    if bad:
        print(f"{mode:<9} note: not Succeeded: {dict(bad)}")


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def temp_dir(stack: contextlib.ExitStack, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def start(stack: contextlib.ExitStack, name: str, argv: list[str], env: dict, log_dir: Path):
    server = servers.ServerProcess(name, argv, env, log_dir)
    stack.callback(server.stop)
    return server


def run_embedded(args) -> None:
    with contextlib.ExitStack() as stack:
        data_dir = temp_dir(stack, "kargo-bench-queue-")
        env = servers.embedded_env(data_dir, secret_key="bench")
        servers.manage(env, "migrate", "--noinput")
        shell(env, SETUP, STAGES=5)
        anchor = shell(env, LOCAL_ANCHOR, SAMPLES=args.samples, SEED=1)
        port = servers.free_port()
        serve = start(stack, "serve", servers.serve_argv(port), env, data_dir)
        serve.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        rows = shell(env, LATENCY, SAMPLES=args.samples, SEED=2)
        report_latency("embedded", anchor, rows, "memory:// in-process")


class Scaled:
    """PostgreSQL + Redis databases of their own, beat and N worker processes."""

    def __init__(self, stack: contextlib.ExitStack, workers: int):
        servers.check_scaled_services()
        self.stack = stack
        token = secrets.token_hex(4)
        self.db_name = f"kargo_bench_{token}"
        self.redis_db = servers.free_redis_db(first=9)
        self.data_dir = temp_dir(stack, "kargo-bench-queue-")
        servers.create_database(self.db_name)
        stack.callback(servers.drop_database, self.db_name)
        stack.callback(servers.flush_redis_db, self.redis_db)
        module_dir = self.data_dir / "benchmod"
        module_dir.mkdir()
        (module_dir / "benchtasks.py").write_text(PING_MODULE)
        self.env = servers.scaled_env(
            self.data_dir, self.db_name, self.redis_db, f"bench{token}", secret_key="bench"
        )
        path = [str(module_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        self.env["PYTHONPATH"] = os.pathsep.join(path)
        self.redis_url = self.env["REDIS_URL"]
        self.workers = workers
        self.batch = 0
        self.running: list[servers.ServerProcess] = []
        from celery import Celery
        from redis import Redis

        self.sender = Celery("bench-sender", broker=self.redis_url)
        self.redis = Redis.from_url(self.redis_url)
        self.key = f"bench-pings-{token}"

    def start_workers(self) -> None:
        self.batch += 1
        for i in range(self.workers):
            argv = [
                *servers.worker_argv("INFO"),
                "--include",
                "benchtasks",
                "-n",
                f"bench{self.batch}-{i}@%h",
            ]
            name = f"worker-{self.batch}-{i}"
            self.running.append(start(self.stack, name, argv, self.env, self.data_dir))

    def stop_workers(self) -> None:
        for worker in self.running:
            worker.stop()
        self.running = []

    def ping(self, n: int) -> None:
        self.sender.send_task("bench.ping", args=[self.key, n, time.time()])

    def pings(self, count: int, timeout: float = 120) -> list[tuple[int, float, float]]:
        """Wait for `count` recorded pings; (n, sent, started) each, and clear them."""
        deadline = time.monotonic() + timeout
        while self.redis.llen(self.key) < count:
            if time.monotonic() > deadline:
                raise servers.ServerError(f"only {self.redis.llen(self.key)} of {count} pings ran")
            time.sleep(0.01)
        raw = self.redis.lrange(self.key, 0, -1)
        self.redis.delete(self.key)
        return [(int(n), float(s), float(t)) for n, s, t in (r.decode().split() for r in raw)]

    def claims(self) -> dict[str, list[float]]:
        """When each promotion was claimed, by the workers' logs ("<asctime> INFO stages.engine:
        worker <token> runs promotion <name>", in this machine's local time)."""
        seen: dict[str, list[float]] = defaultdict(list)
        for log in self.data_dir.glob("worker-*.log"):
            for text in log.read_text(errors="replace").splitlines():
                if " runs promotion " in text:
                    name = text.split(" runs promotion ")[1].split()[0]
                    when = datetime.strptime(text[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    seen[name].append(when)
        return seen

    def sample(self) -> tuple[int, int, int]:
        """(open, Running, Running with no worker's claim) promotions right now."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.db_name}") as conn:
            return conn.execute(
                "select count(*) filter (where phase in ('Pending', 'Running')),"
                " count(*) filter (where phase = 'Running'),"
                " count(*) filter (where phase = 'Running' and claimed_by = '')"
                " from stages_promotion"
            ).fetchone()


def run_scaled(args) -> None:
    with contextlib.ExitStack() as stack:
        cluster = Scaled(stack, args.workers)
        servers.manage(cluster.env, "migrate", "--noinput")
        shell(cluster.env, SETUP, STAGES=args.stages)
        start(stack, "beat", servers.beat_argv(cluster.data_dir), cluster.env, cluster.data_dir)
        cluster.start_workers()
        cluster.ping(-1)
        cluster.pings(1, timeout=120)  # the workers are up
        time.sleep(2)

        rng = random.Random(3)
        anchor = []
        for n in range(args.samples):
            time.sleep(rng.uniform(0.2, 0.7))
            cluster.ping(n)
            ((_, sent, started),) = cluster.pings(1)
            anchor.append((started - sent) * 1000)
        rows = shell(cluster.env, LATENCY, SAMPLES=args.samples, SEED=4)
        report_latency("scaled", anchor, rows, "Redis, 4 workers")

        count = args.promotions
        first = time.time()
        for n in range(count):
            cluster.ping(n)
        done = cluster.pings(count)
        ceiling = count / (max(t for _, _, t in done) - first)

        cluster.stop_workers()
        shell(cluster.env, QUEUE, COUNT=count)
        cluster.start_workers()
        deadline = time.monotonic() + args.deadline
        samples = []
        while time.monotonic() < deadline:
            samples.append(cluster.sample())
            if not samples[-1][0]:
                break
            time.sleep(0.5)
        cluster.stop_workers()
        rows = shell(cluster.env, REPORT)
        report_throughput(args, rows, cluster.claims(), ceiling, samples)


def report_throughput(
    args, rows: list[dict], claims: dict, ceiling: float, samples: list[tuple[int, int, int]]
) -> None:
    def at(text):
        return datetime.fromisoformat(text).timestamp() if text else None

    phases = Counter(r["phase"] for r in rows)
    lost = args.promotions - phases.get("Succeeded", 0)
    twice = [r["name"] for r in rows if len(claims.get(r["name"], [])) > 1 or r["resumes"]]
    not_logged = [
        r["name"] for r in rows if r["phase"] == "Succeeded" and not claims.get(r["name"])
    ]
    # From started_at to the worker's "runs promotion" line. Where a promotion was marked Running
    # before a worker claimed it (logging the claim at once), this is how long it showed Running
    # with no worker; where the claim is the same UPDATE, it is the claim's commit (with its live
    # updates) up to the run's start.
    window = [
        (min(claims[r["name"]]) - at(r["started"])) * 1000
        for r in rows
        if r["started"] and claims.get(r["name"])
    ]
    queued = [(at(r["started"]) - at(r["created"])) * 1000 for r in rows if r["started"]]
    by_stage = defaultdict(list)
    for r in rows:
        by_stage[r["stage"]].append(r)
    out_of_order = 0
    for queue in by_stage.values():
        queue.sort(key=lambda r: (r["created"], r["id"]))
        for before, after in zip(queue, queue[1:], strict=False):
            if not (before["finished"] and after["started"]):
                continue
            if at(after["started"]) < at(before["finished"]):
                out_of_order += 1
    started = [at(r["started"]) for r in rows if r["started"]]
    finished = [at(r["finished"]) for r in rows if r["finished"]]
    span = max(finished) - min(started) if started and finished else float("nan")
    rate = phases.get("Succeeded", 0) / span if span else float("nan")
    print(
        f"scaled    throughput: {args.promotions} promotions over {args.stages} Stages, "
        f"{args.workers} workers: {rate:.1f}/s ({span:.1f} s first start -> last finish); "
        f"bare-task ceiling {ceiling:.0f}/s"
    )
    print(line("scaled", "under load: created -> Running (queued)", queued))
    print(line("scaled", "under load: Running -> 'runs promotion' logged", window))
    unclaimed = [u for _, _, u in samples]
    running = [r for _, r, _ in samples]
    print(
        f"scaled    under load, sampled every 0.5 s: Running at once max {max(running)}; "
        f"Running with no worker's claim max {max(unclaimed)}, "
        f"mean {statistics.mean(unclaimed):.1f}"
    )
    print(
        f"scaled    checks: lost {lost} ({dict(phases)}), run twice {len(twice)}, "
        f"out of order {out_of_order}; claims not found in the logs: {len(not_logged)}"
    )


def _on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "scaled", "both"), default="both")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--promotions", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=600, help="seconds for the load run")
    parser.add_argument("--label", default="", help="printed with the figures (before/after)")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"bench_queue {args.label} ({ROOT}); nproc {len(os.sched_getaffinity(0))}; ms:")
    print(f"{'mode':<9} {'what':<56} {'median':>8} {'p95':>8}")
    try:
        if args.mode in ("embedded", "both"):
            run_embedded(args)
        if args.mode in ("scaled", "both"):
            try:
                run_scaled(args)
            except servers.Unavailable as exc:
                print(f"scaled    skipped: {exc}")
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temporary databases and directories removed")
        sys.exit(130)


if __name__ == "__main__":
    main()
