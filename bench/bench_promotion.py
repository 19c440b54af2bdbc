"""One promotion of the demo template: the engine in process against the same work in plain bash.

Run: .venv/bin/python bench/bench_promotion.py [--runs 10]

Builds the demo's git repositories (`manage.py demo`, on its own SQLite database in a temp dir),
then promotes Freight into the `test` Stage --runs times through stages.engine.run, in process.
Alternating with those runs, a bash script does the same work on a copy of the GitOps repository:
a bare clone with main and stage/test as worktrees, clear the output tree, set the image tag,
`kubectl kustomize`, `git add` + `git commit`, `git push`. Each side first makes one untimed
promotion (the engine's creates the stage/test branch). The two alternate Freight (v1.0.0 and
v1.1.0), so every promotion commits a change and pushes it as a fast-forward.

Prints the medians of both sides, step by step (bash times its steps with $EPOCHREALTIME; the
engine's steps are timed around each step's run, and whatever else its run takes is the
engine's own work: database writes, live broadcasts, expressions), the ratio engine / bash (the
goal: at most 1.2x the bash anchor), and the git commands each side runs. Figures only, no
pass/fail; not part of the test run. The temp dir is removed at the end.
"""

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Django reads its settings once, at setup: the temp data dir and database must be named first.
TMP = Path(tempfile.mkdtemp(prefix="kargo-bench-promotion-"))
os.environ.update(
    KARGO_DATA_DIR=str(TMP / "data"),
    KARGO_SQLITE_PATH=str(TMP / "bench.sqlite3"),
    DJANGO_SECRET_KEY="bench",
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kargo_ui.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from freight.models import Freight  # noqa: E402
from kargo import runner  # noqa: E402
from stages import actions, engine  # noqa: E402
from stages.models import Stage  # noqa: E402
from stages.steps import STEPS  # noqa: E402

FREIGHT_TAGS = ("v1.0.0", "v1.1.0")
# The demo template's steps, in order; the bash script marks the end of each.
STEP_NAMES = (
    "git-clone",
    "git-clear",
    "kustomize-set-image",
    "kustomize-build",
    "git-commit",
    "git-push",
)

# The same work as the demo template's six steps, as a person would script it. $1 is the GitOps
# repository's URL, $2 a fresh work dir, $3 the image tag. `mark` notes the time (a bash builtin
# variable: no process) at the end of each step; the script prints the marks.
BASH_PROMOTION = r"""
set -euo pipefail
repo=$1 work=$2 tag=$3
marks=$EPOCHREALTIME
mark() { marks+=" $EPOCHREALTIME"; }
git clone --quiet --bare "$repo" "$work/clone.git"
git -C "$work/clone.git" worktree add --quiet "$work/src" main
git -C "$work/clone.git" worktree add --quiet "$work/out" stage/test
mark
find "$work/out" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
mark
sed -i "s/newTag: .*/newTag: $tag/" "$work/src/base/kustomization.yaml"
mark
kubectl kustomize "$work/src/stages/test" > "$work/out/manifests.yaml"
mark
git -C "$work/out" add --all .
git -C "$work/out" -c user.name=Kargo -c user.email=no-reply@kargo.io \
    commit --quiet --no-verify -m "Updated ./src/base to use new image"$'\n\n'"- demo/guestbook:$tag"
mark
git -C "$work/out" push --quiet origin HEAD:refs/heads/stage/test
mark
rm -rf "$work"
echo "$marks"
"""
BASH_GIT_COMMANDS = sum(line.lstrip().startswith("git ") for line in BASH_PROMOTION.splitlines())


class Clock:
    """Times each step's run and counts the git commands the steps run (at kargo.runner.run, the
    one way a step runs a program)."""

    def __init__(self):
        self.steps: dict[str, float] = {}
        self.git_verbs: Counter = Counter()
        real_run = runner.run

        def counting_run(args, **kw):
            if Path(args[0]).name == "git":
                self.git_verbs[git_verb(args)] += 1
            return real_run(args, **kw)

        runner.run = counting_run
        for name in STEP_NAMES:
            STEPS[name].run = self.timed(name, STEPS[name].run)

    def timed(self, name: str, run):
        def timed_run(step, ctx, config):
            started = time.perf_counter()
            try:
                return run(step, ctx, config)
            finally:
                self.steps[name] = time.perf_counter() - started

        return timed_run

    def reset(self) -> None:
        self.steps = {}
        self.git_verbs = Counter()


def git_verb(args: list[str]) -> str:
    words = iter(args[1:])
    for word in words:
        if word == "-c":
            next(words)  # its value
        elif not word.startswith("-"):
            return word
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    # The engine logs every run it starts; the figures are the output here.
    logging.disable(logging.INFO)
    if shutil.which("kubectl") is None:
        sys.exit("kubectl is needed (the kustomize-build step runs `kubectl kustomize`)")
    try:
        bench(args.runs)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


def bench(runs: int) -> None:
    call_command("migrate", verbosity=0)
    call_command("demo", stdout=open(os.devnull, "w"))
    stage = Stage.objects.get(project__name="kargo-demo", name="test")
    freight = {
        tag: Freight.objects.get(project=stage.project, commits__0__tag=tag) for tag in FREIGHT_TAGS
    }
    gitops = Path(settings.DATA_DIR) / "demo" / "repos" / "guestbook-gitops.git"
    # The bash side gets its own copy, so the two never race for a branch.
    bash_repo = TMP / "bash-gitops.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(gitops), str(bash_repo)], check=True)

    clock = Clock()
    engine_runs, bash_runs = [], []
    for n in range(runs + 1):  # run 0 is the untimed warm-up
        tag = FREIGHT_TAGS[n % 2]
        clock.reset()
        total = promote(stage, freight[tag])
        engine_runs.append({**clock.steps, "total": total})
        bash_runs.append(bash_promote(bash_repo, tag, create=n == 0))
    report(runs, engine_runs[1:], bash_runs[1:], clock.git_verbs)  # the last run's commands


def promote(stage: Stage, freight: Freight) -> float:
    """One promotion through the engine; its wall time. No worker is involved: the engine runs
    here, as the worker's task would run it."""
    promotion = actions.do_promote(stage, freight, actor="bench")
    claimed = actions.do_start_next(stage.id, claimed_by=actions.claim_token())
    started = time.perf_counter()
    engine.run(claimed.id, claimed.claimed_by)
    elapsed = time.perf_counter() - started
    promotion.refresh_from_db()
    if promotion.phase != "Succeeded":
        sys.exit(f"promotion {promotion.name} ended {promotion.phase}: {promotion.message}")
    return elapsed


def bash_promote(repo: Path, tag: str, create: bool) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(dir=TMP, prefix="bash-run-"))
    if create:
        # What git-clone's create: true does on the engine's first promotion.
        subprocess.run(["git", "--git-dir", str(repo), "branch", "stage/test", "main"], check=True)
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-c", BASH_PROMOTION, "bash", repo.as_uri(), str(work), tag],
        check=True,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - started
    marks = [float(mark) for mark in proc.stdout.split()]
    steps = {
        name: end - start
        for name, start, end in zip(STEP_NAMES, marks[:-1], marks[1:], strict=True)
    }
    return {**steps, "total": total}


def report(runs, engine_runs, bash_runs, git_verbs) -> None:
    def median(sample: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in sample) * 1000

    print(f"one promotion of the demo template, {runs} runs each (after one untimed warm-up)")
    print(f"median ms                  {'bash':>8} {'engine':>8}")
    for name in STEP_NAMES:
        print(f"  {name:24} {median(bash_runs, name):8.1f} {median(engine_runs, name):8.1f}")
    for run in engine_runs + bash_runs:
        run["own"] = run["total"] - sum(run[name] for name in STEP_NAMES)
    print(
        f"  {'outside the steps':24} {median(bash_runs, 'own'):8.1f} {median(engine_runs, 'own'):8.1f}"
    )
    print(f"  {'total':24} {median(bash_runs, 'total'):8.1f} {median(engine_runs, 'total'):8.1f}")
    print(
        "  (outside the steps: both remove their work dir; bash starts, the engine writes the "
        "promotion's progress to the database, broadcasts it live and evaluates expressions)"
    )
    # Each engine run is paired with the bash run right after it: the machine's load changes
    # slowly, so the pairs' ratios say more than the ratio of the medians when it is busy.
    paired = statistics.median(
        e["total"] / b["total"] for e, b in zip(engine_runs, bash_runs, strict=True)
    )
    fastest = min(e["total"] for e in engine_runs) / min(b["total"] for b in bash_runs)
    print(
        f"ratio engine / bash: {median(engine_runs, 'total') / median(bash_runs, 'total'):.2f}x "
        f"of the medians, {paired:.2f}x the median of the {runs} pairs, {fastest:.2f}x of the "
        "fastest (goal: <= 1.2x)"
    )
    print(
        f"git commands per promotion: bash {BASH_GIT_COMMANDS}, engine {sum(git_verbs.values())} ("
        + ", ".join(f"{verb} x{count}" for verb, count in sorted(git_verbs.items()))
        + ")"
    )


if __name__ == "__main__":
    main()
