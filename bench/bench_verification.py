"""Verification under load: how late a scaled cluster takes each measurement of many AnalysisRuns
at once, beside the bare Celery countdown it is scheduled with.

Run: .venv/bin/python bench/bench_verification.py [--runs 200] [--count 10] [--workers 4]
     [--deadline 600]

Scaled mode only (PostgreSQL + Redis databases of their own, `--workers` worker processes with
2 threads each, as the tests run them, and one beat). `manage.py kargo apply -f` creates a
project with one Warehouse, one AnalysisTemplate (one `web` metric, `interval: 1s`,
`count: --count`, every measurement kept) and `--runs` Stages whose one-step promotion
(compose-output) takes Freight directly from the Warehouse and whose verification uses the
template, and one Freight. A `manage.py shell` process (another process than the workers, as the
CLI is) then promotes every Stage, so as many AnalysisRuns start; their metric asks a
ThreadingHTTPServer on loopback run by this bench (`{"ok": true}`).

Read back from the database once every run has ended (or `--deadline` passed), in ms:
- each measurement after a run's first: startedAt - (the previous one's finishedAt + interval),
  how late the countdown task that was to take it came (goal: p95 below 1 s);
- each run's first measurement: startedAt - the run's startedAt;
- how many runs ended Successful, how many measurements each holds (and how many requests the
  HTTP server answered: more than the measurements means some were taken twice);
- CPU seconds (utime + stime, /proc/<pid>/stat) of the worker processes from the promotions'
  start to the last run's end, per measurement taken (the promotions and run starts included).
Anchor, measured first in the same run on the same broker and workers: `--runs` chains of
`--count` trivial tasks, each sending the next with countdown=1 as a run schedules its next
measurement; lag = started - (sent + 1 s), and the workers' CPU per task.

Prints figures and asserts nothing; not part of the test run. Every process, temp dir, database
and Redis database it made is removed at the end, also on Ctrl-C.
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from celery import Celery
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.e2e.servers when run as bench/bench_verification.py

from tests.e2e import servers  # noqa: E402

PROJECT = "bench"
INTERVAL = timedelta(seconds=1)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COMPLETED = ("Successful", "Failed", "Error", "Inconclusive")

# --------------------------------------------------------------------------------------------
# Code run in `manage.py shell` in the servers' configuration (parameters are prepended)
# --------------------------------------------------------------------------------------------

PROMOTE = """
import json
from freight.models import Freight
from stages.actions import do_promote
from stages.models import Stage

freight = Freight.objects.get(project__name=PROJECT)
stages = list(Stage.objects.filter(project__name=PROJECT).order_by("name"))
for stage in stages:
    do_promote(stage, freight, actor="bench")
print(json.dumps(len(stages)))
"""

# Imported by the workers (celery --include): the anchor's task. Each records when it started, in
# Redis, for the bench to read, and sends the next of its chain with countdown=1.
TICK_MODULE = """
import os, time
import redis
from celery import shared_task

_redis = redis.Redis.from_url(os.environ["REDIS_URL"])

@shared_task(name="bench.tick", ignore_result=True)
def tick(key, chain, n, left, sent):
    _redis.rpush(key, f"{chain} {n} {sent} {time.time()}")
    if left > 1:
        tick.apply_async((key, chain, n + 1, left - 1, time.time()), countdown=1)
"""


def shell(env: dict, code: str, **params) -> object:
    """Run `code` in `manage.py shell` with `params` defined; its last output line, as JSON."""
    prefix = "".join(f"{name} = {value!r}\n" for name, value in params.items())
    out = servers.manage(env, "shell", "-c", prefix + code, timeout=900)
    return json.loads(out.strip().splitlines()[-1])


def manifest(runs: int, count: int, base_url: str) -> str:
    """The project as Kargo YAML (each document in JSON, which YAML reads)."""
    repo = "file:///nonexistent/bench.git"
    origin = {"kind": "Warehouse", "name": "source"}
    docs = [
        {
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Project",
            "metadata": {"name": PROJECT},
        },
        {
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "source", "namespace": PROJECT},
            "spec": {"interval": "24h", "subscriptions": [{"git": {"repoURL": repo}}]},
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "health", "namespace": PROJECT},
            "spec": {
                "args": [{"name": "base"}, {"name": "stage"}],
                "metrics": [
                    {
                        "name": "ok",
                        "interval": f"{INTERVAL.seconds}s",
                        "count": count,
                        "successCondition": "result == true",
                        "provider": {
                            "web": {
                                "url": "{{args.base}}/health/{{args.stage}}",
                                "jsonPath": "{$.ok}",
                            }
                        },
                    }
                ],
                "measurementRetention": [{"metricName": "ok", "limit": count}],
            },
        },
    ]
    for i in range(runs):
        docs.append(
            {
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "kind": "Stage",
                "metadata": {"name": f"s{i:03d}", "namespace": PROJECT},
                "spec": {
                    "requestedFreight": [{"origin": origin, "sources": {"direct": True}}],
                    "promotionTemplate": {
                        "spec": {
                            "steps": [
                                {
                                    "uses": "compose-output",
                                    "as": "out",
                                    "config": {"freight": "${{ ctx.targetFreight.name }}"},
                                }
                            ]
                        }
                    },
                    "verification": {
                        "analysisTemplates": [{"name": "health"}],
                        "args": [
                            {"name": "base", "value": base_url},
                            {"name": "stage", "value": "${{ ctx.stage }}"},
                        ],
                    },
                },
            }
        )
    docs.append(
        {
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Freight",
            "metadata": {"name": "v1", "namespace": PROJECT},
            "alias": "v1",
            "origin": origin,
            "commits": [{"repoURL": repo, "id": "a" * 40, "tag": "v1.0.0"}],
        }
    )
    return "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"


# --------------------------------------------------------------------------------------------
# The service under verification
# --------------------------------------------------------------------------------------------


class Service:
    """A ThreadingHTTPServer on loopback answering {"ok": true}, counting the requests."""

    def __init__(self, stack: contextlib.ExitStack):
        self.requests = 0
        lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with lock:
                    service.requests += 1
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(what: str, values: list[float]) -> str:
    if not values:
        return f"{what:<58} {'-':>8} {'-':>8} {'-':>8}   (none)"
    return (
        f"{what:<58} {statistics.median(values):>8.0f} {percentile(values, 95):>8.0f}"
        f" {max(values):>8.0f}   n={len(values)}"
    )


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes so far, in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        rest = data[data.rfind(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])
    return total / CLOCK_TICKS


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def run_figures(rows: list[tuple[str, dict]]) -> dict:
    """Lags (ms), phases and measurement counts of the runs read back from the database."""
    later, first, phases, held, taken = [], [], Counter(), Counter(), 0
    for _, status in rows:
        phases[status.get("phase")] += 1
        results = status.get("metricResults") or [{}]
        result = results[0]
        measurements = result.get("measurements") or []
        held[len(measurements)] += 1
        taken += result.get("count", 0) + result.get("error", 0)
        if measurements and status.get("startedAt"):
            first.append(ms(at(measurements[0]["startedAt"]) - at(status["startedAt"])))
        for before, after in zip(measurements, measurements[1:], strict=False):
            if before.get("finishedAt"):
                due = at(before["finishedAt"]) + INTERVAL
                later.append(ms(at(after["startedAt"]) - due))
    return {"later": later, "first": first, "phases": phases, "held": held, "taken": taken}


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def temp_dir(stack: contextlib.ExitStack, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def start(stack: contextlib.ExitStack, name: str, argv: list[str], env: dict, log_dir: Path):
    server = servers.ServerProcess(name, argv, env, log_dir)
    stack.callback(server.stop)
    return server


def wait_for_ticks(redis: Redis, key: str, count: int, timeout: float) -> list[list[float]]:
    """The `count` recorded ticks (chain, n, sent, started), once all ran; cleared."""
    deadline = time.monotonic() + timeout
    while redis.llen(key) < count:
        if time.monotonic() > deadline:
            raise servers.ServerError(f"only {redis.llen(key)} of {count} anchor tasks ran")
        time.sleep(0.05)
    raw = redis.lrange(key, 0, -1)
    redis.delete(key)
    return [[float(x) for x in r.decode().split()] for r in raw]


def run(args) -> None:
    with contextlib.ExitStack() as stack:
        servers.check_scaled_services()
        token = secrets.token_hex(4)
        db_name = f"kargo_bench_{token}"
        redis_db = servers.free_redis_db(first=9)
        data_dir = temp_dir(stack, "kargo-bench-verification-")
        servers.create_database(db_name)
        stack.callback(servers.drop_database, db_name)
        stack.callback(servers.flush_redis_db, redis_db)
        module_dir = data_dir / "benchmod"
        module_dir.mkdir()
        (module_dir / "benchtasks.py").write_text(TICK_MODULE)
        env = servers.scaled_env(data_dir, db_name, redis_db, f"bench{token}", secret_key="bench")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(module_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env["KARGO_EGRESS_ALLOW_LOCAL"] = "1"
        service = Service(stack)

        servers.manage(env, "migrate", "--noinput")
        path = data_dir / "bench.yaml"
        path.write_text(manifest(args.runs, args.count, service.url))
        servers.manage(env, "kargo", "--actor", "bench", "apply", "-f", str(path), timeout=600)

        start(stack, "beat", servers.beat_argv(data_dir), env, data_dir)
        workers = []
        for i in range(args.workers):
            argv = [*servers.worker_argv("INFO"), "--include", "benchtasks", "-n", f"bench-{i}@%h"]
            workers.append(start(stack, f"worker-{i}", argv, env, data_dir))
        pids = [w.pid for w in workers]
        sender = Celery("bench-sender", broker=env["REDIS_URL"])
        redis = Redis.from_url(env["REDIS_URL"])
        key = f"bench-ticks-{token}"
        sender.send_task("bench.tick", args=[key, -1, 0, 1, time.time()])
        wait_for_ticks(redis, key, 1, timeout=120)  # the workers are up
        time.sleep(2)

        # Anchor: as many chains of countdown=1 tasks as runs, as many tasks each as measurements.
        cpu_before = cpu_seconds(pids)
        for chain in range(args.runs):
            sender.send_task(
                "bench.tick", args=[key, chain, 0, args.count, time.time()], countdown=1
            )
        ticks = wait_for_ticks(redis, key, args.runs * args.count, timeout=args.deadline)
        anchor_cpu = cpu_seconds(pids) - cpu_before
        anchor = [(started - (sent + 1)) * 1000 for _, _, sent, started in ticks]
        time.sleep(2)

        # Verification: promote every Stage; wait for every run to end.
        cpu_before = cpu_seconds(pids)
        shell(env, PROMOTE, PROJECT=PROJECT)
        deadline = time.monotonic() + args.deadline
        dsn = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                total, done = conn.execute(
                    "select count(*), count(*) filter (where status->>'phase' = any(%s))"
                    " from stages_analysisrun",
                    (list(COMPLETED),),
                ).fetchone()
                if total >= args.runs and done == total:
                    break
                time.sleep(0.5)
            verification_cpu = cpu_seconds(pids) - cpu_before
            rows = conn.execute("select name, status from stages_analysisrun").fetchall()
        report(args, anchor, anchor_cpu, run_figures(rows), verification_cpu, service.requests)


def report(
    args, anchor: list[float], anchor_cpu: float, runs: dict, cpu: float, requests: int
) -> None:
    print(line("anchor: bare task countdown=1, started - (sent + 1 s)", anchor))
    print(line("measurement 2..N: startedAt - (previous finishedAt + 1 s)", runs["later"]))
    print(line("measurement 1: startedAt - run startedAt", runs["first"]))
    phases = runs["phases"]
    print(
        f"runs: {phases.get('Successful', 0)} of {args.runs} Successful ({dict(phases)}); "
        f"measurements held per run {dict(sorted(runs['held'].items()))}; "
        f"{runs['taken']} taken, HTTP server answered {requests}"
    )
    tasks = args.runs * args.count
    per_measurement = cpu / runs["taken"] * 1000 if runs["taken"] else float("nan")
    print(
        f"worker CPU (utime+stime): {per_measurement:.1f} ms per measurement "
        f"({cpu:.1f} s / {runs['taken']}, promotions and run starts included); "
        f"anchor {anchor_cpu / tasks * 1000:.1f} ms per task ({anchor_cpu:.1f} s / {tasks})"
    )


def _on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--deadline", type=float, default=600, help="seconds for the anchor and for the runs"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(
        f"bench_verification ({ROOT}); nproc {len(os.sched_getaffinity(0))}; {args.runs} runs x "
        f"{args.count} measurements, interval 1 s; scaled, {args.workers} workers x 2 threads; ms:"
    )
    print(f"{'what':<58} {'median':>8} {'p95':>8} {'max':>8}", flush=True)
    try:
        run(args)
    except servers.Unavailable as exc:
        print(f"skipped: {exc}")
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temporary databases and directories removed")
        sys.exit(130)


if __name__ == "__main__":
    main()
