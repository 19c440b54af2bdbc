"""The dashboard's scaled mode as real processes for the chaos test (tests/integration/test_chaos.py):
a Celery worker that is killed with SIGKILL and started again, a beat whose `reconcile` finds and
resumes the lost work, on this machine's PostgreSQL and Redis, promoting through the git-backed
demo. Built on the e2e server helpers (tests/e2e/servers.py).

The test process never opens the servers' database through Django: it reads it with psql, and
changes it only through `manage.py shell` (the dashboard's own actions) in the servers'
configuration.
"""

import json
import os
import re
import secrets
import signal
import subprocess
from pathlib import Path

from tests.e2e.servers import (
    PG,
    RUNNING,
    ServerError,
    ServerProcess,
    beat_argv,
    check_scaled_services,
    create_database,
    drop_database,
    flush_redis_db,
    free_redis_db,
    manage,
    scaled_env,
    seed_demo,
    worker_argv,
)

STAGES = ("test", "uat", "prod")
TAGS = ("v1.0.0", "v1.1.0")

# Run in `manage.py shell`: approve both demo Freight for uat and prod (so every Stage can take
# either), then queue `count` promotions round-robin over the Stages, each Stage alternating the
# two Freight so that every promotion changes what its branch holds (one commit each).
QUEUE = """
import json
from freight.actions import do_approve
from freight.models import Freight
from stages.actions import do_promote
from stages.models import Stage

stages = [Stage.objects.get(project__name="kargo-demo", name=name) for name in STAGES]
by_tag = {f.commits[0]["tag"]: f for f in Freight.objects.filter(project__name="kargo-demo")}
pair = [by_tag[tag] for tag in TAGS]
for i, freight in enumerate(pair):
    for stage in stages[1:]:
        freight = do_approve(freight, stage.name, "chaos")
    pair[i] = freight
names = []
for i in range(COUNT):
    stage, freight = stages[i % len(stages)], pair[(i // len(stages)) % 2]
    names.append(do_promote(stage, freight, actor="chaos").name)
print(json.dumps(names))
"""

# Run in `manage.py shell`: every promotion and Stage as the dashboard records them.
REPORT = """
import json
from freight.models import Freight
from stages.models import Promotion, Stage

tags = {f.name: f.commits[0]["tag"] for f in Freight.objects.filter(project__name="kargo-demo")}
promotions = [
    {
        "name": p.name,
        "stage": p.stage.name,
        "phase": p.phase,
        "message": p.message,
        "resumes": p.resumes,
        "tag": tags[p.freight_name],
        # The commit its git-push step reports the branch at (None when it never recorded one).
        "pushed": next(
            (
                (p.status.get("state") or {}).get(step.as_ or f"step-{i + 1}", {}).get("commit")
                for i, step in enumerate(p.typed_spec.steps)
                if step.uses == "git-push"
            ),
            None,
        ),
        "steps": [
            [m.get("alias"), m.get("status"), m.get("message", "")]
            for m in p.status.get("stepExecutionMetadata", [])
        ],
    }
    for p in Promotion.objects.filter(project__name="kargo-demo").order_by("created_at", "id")
]
stages = {}
for s in Stage.objects.filter(project__name="kargo-demo"):
    history = s.status.get("freightHistory") or []
    current = history[0]["items"]["Warehouse/guestbook"]["name"] if history else None
    stages[s.name] = {"tag": tags.get(current), "last": s.status.get("lastPromotion", {}).get("name")}
print(json.dumps({"promotions": promotions, "stages": stages}))
"""


# The resume limit of the chaos cluster's worker (see ChaosCluster.start). CHAOS_MAX_RESUMES=3
# (the default limit) lets promotions give up, to study that path under chaos.
MAX_RESUMES = int(os.environ.get("CHAOS_MAX_RESUMES") or 100)


class ChaosCluster:
    """PostgreSQL database + Redis database + beat + a worker that can be killed and restarted."""

    def __init__(self, base: Path, heartbeat_timeout: float, reconcile_interval: float):
        self.base = base
        self.data_dir = base / "var"
        self.data_dir.mkdir(parents=True)
        self.db_name = f"kargo_chaos_{secrets.token_hex(4)}"
        self.redis_db: int | None = None
        self.env: dict = {}
        self.heartbeat_timeout = heartbeat_timeout
        self.reconcile_interval = reconcile_interval
        self.beat: ServerProcess | None = None
        self.worker: ServerProcess | None = None
        self.workers_started = 0
        self.created_db = False

    @property
    def gitops(self) -> Path:
        return self.data_dir / "demo" / "repos" / "guestbook-gitops.git"

    def start(self) -> None:
        """The database, the demo and beat; no worker yet (start_worker)."""
        check_scaled_services()
        self.redis_db = free_redis_db(first=11)
        create_database(self.db_name)
        self.created_db = True
        self.env = scaled_env(self.data_dir, self.db_name, self.redis_db, f"chaos{self.redis_db}")
        self.env.update(
            KARGO_PROMOTION_HEARTBEAT_TIMEOUT=str(self.heartbeat_timeout),
            KARGO_RECONCILE_INTERVAL=str(self.reconcile_interval),
            # More resumes than the test can ever kill one promotion: here every promotion must
            # resume to the end. Giving up after the limit is tested in test_reconcile.
            KARGO_PROMOTION_MAX_RESUMES=str(MAX_RESUMES),
        )
        seed_demo(self.env)
        # Every update of a branch in the GitOps repository is logged, so pushes can be counted
        # and a non-fast-forward one would show.
        git(self.gitops, "config", "core.logAllRefUpdates", "always")
        self.beat = ServerProcess("beat", beat_argv(self.data_dir), self.env, self.base)

    def start_worker(self) -> ServerProcess:
        self.workers_started += 1
        # INFO: the engine logs each claim ("worker <host>:<pid>:... runs promotion <name>").
        # Celery's own "ready" is not logged (settings quiet the celery logger): a worker is known
        # to be up when it holds a run (runs_held_by).
        self.worker = ServerProcess(
            f"worker-{self.workers_started}", worker_argv("INFO"), self.env, self.base
        )
        return self.worker

    def kill_worker(self) -> None:
        """kill -9 of the worker's whole process group (its git and kubectl children too)."""
        worker, self.worker = self.worker, None
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.stop()  # reaps it and closes its log; the KILL has already happened

    def stop(self) -> None:
        for process in list(RUNNING):
            if process in (self.worker, self.beat):
                process.stop()
        if self.created_db:
            drop_database(self.db_name)
        if self.redis_db is not None:
            flush_redis_db(self.redis_db)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.base.glob("*.log")):
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            parts.append(f"--- {path.name}\n{tail}")
        return "\n".join(parts)

    # --- the servers' database -----------------------------------------------------------

    def sql(self, query: str) -> list[list[str]]:
        proc = subprocess.run(
            ["psql", *PG, "-d", self.db_name, "-At", "-F", "\t", "-c", query],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            raise ServerError(f"psql failed: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines() if line]

    def phase_counts(self) -> dict[str, int]:
        return {
            phase: int(n)
            for phase, n in self.sql("select phase, count(*) from stages_promotion group by phase")
        }

    def runs_held_by(self, pid: int) -> list[tuple[str, str]]:
        """(promotion, where its run is) for every run the worker process `pid` holds: the step
        that is Running, or "between steps"."""
        out = []
        rows = self.sql(
            "select name, status::text from stages_promotion "
            f"where phase = 'Running' and claimed_by like '%:{int(pid)}:%'"
        )
        for name, status in rows:
            steps = json.loads(status).get("stepExecutionMetadata") or []
            running = [m["alias"] for m in steps if m.get("status") == "Running"]
            out.append((name, running[-1] if running else "between steps"))
        return out

    def shell(self, code: str) -> str:
        return manage(self.env, "shell", "-c", code, timeout=300)

    def queue(self, count: int) -> list[str]:
        code = f"STAGES = {STAGES!r}\nTAGS = {TAGS!r}\nCOUNT = {count}\n" + QUEUE
        return json.loads(self.shell(code).strip().splitlines()[-1])

    def report(self) -> dict:
        return json.loads(self.shell(REPORT).strip().splitlines()[-1])

    # --- the GitOps repository -----------------------------------------------------------

    def ref_updates(self, branch: str) -> list[tuple[str, str]]:
        """(old, new) for every update of the branch, oldest first (its reflog)."""
        log = self.gitops / "logs" / "refs" / "heads" / branch
        if not log.exists():
            return []
        return [tuple(line.split()[:2]) for line in log.read_text().splitlines() if line]

    def is_ancestor(self, old: str, new: str) -> bool:
        return git_ok(self.gitops, "merge-base", "--is-ancestor", old, new)

    def branch_commits(self, branch: str) -> list[tuple[str, str, str]]:
        """(sha, tree, parent tree) of the branch's commits, oldest first ("" for a root)."""
        out = git(self.gitops, "log", "--reverse", "--first-parent", "--format=%H %T %P", branch)
        commits = []
        for line in out.splitlines():
            sha, tree, *parents = line.split()
            parent_tree = git(self.gitops, "rev-parse", f"{parents[0]}^{{tree}}") if parents else ""
            commits.append((sha, tree, parent_tree))
        return commits

    def image_tag(self, commit: str) -> str | None:
        """The guestbook image tag in the commit's manifests.yaml (None when it has none)."""
        if not git_ok(self.gitops, "cat-file", "-e", f"{commit}:manifests.yaml"):
            return None
        found = re.search(
            r"image: demo/guestbook:(\S+)", git(self.gitops, "show", f"{commit}:manifests.yaml")
        )
        return found.group(1) if found else None


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def git_ok(repo: Path, *args: str) -> bool:
    return (
        subprocess.run(
            ["git", "--git-dir", str(repo), *args], capture_output=True, timeout=60
        ).returncode
        == 0
    )
