"""Chaos: 50 promotions through the git-backed demo while the Celery worker is killed with SIGKILL
at random moments (seeded; CHAOS_SEED=<n> repeats a run's choices) and started again, with beat's
`reconcile` finding and resuming what the dead worker held.

Afterwards: no promotion stuck or lost, every promotion Succeeded or, only after its resumes ran
out, Errored; on every stage branch each change landed exactly once (one fast-forward push per
commit, no commit repeating its parent's content, the commits' image tags in promotion order),
and the dashboard shows what the branches hold. The figures are printed and written to
test-results/chaos-figures.txt.
"""

import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.servers import ROOT, ServerError

from .chaos_servers import MAX_RESUMES, STAGES, ChaosCluster

PROMOTIONS = 50
MAX_KILLS = 15
HEARTBEAT_TIMEOUT = 3.0  # seconds of silence before a run is taken for dead (default 30)
RECONCILE_INTERVAL = 0.5
DEADLINE = 360.0  # for the whole run: far above what it needs, so only a hang trips it
OPEN_PHASES = ("Pending", "Running")


@pytest.fixture
def cluster(tmp_path):
    cluster = ChaosCluster(tmp_path, HEARTBEAT_TIMEOUT, RECONCILE_INTERVAL)
    try:
        try:
            cluster.start()
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield cluster
    finally:
        cluster.stop()


def test_killing_the_worker_at_random_moments_loses_nothing_and_pushes_nothing_twice(cluster):
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} (CHAOS_SEED={seed} repeats these choices)")

    queued = cluster.queue(PROMOTIONS)  # queued before any worker runs: all of it under chaos
    assert len(queued) == PROMOTIONS
    cluster.start_worker()
    kills, kill_points = 0, Counter()
    started = time.monotonic()
    finished_at_kill = -1  # the first kill may come before anything finished
    while True:
        counts = cluster.phase_counts()
        if not any(counts.get(phase) for phase in OPEN_PHASES):
            break
        if time.monotonic() - started > DEADLINE:
            pytest.fail(
                f"seed {seed}: promotions still open after {DEADLINE:.0f}s: {counts}\n"
                f"{cluster.logs()}",
                pytrace=False,
            )
        time.sleep(rng.uniform(0.1, 2.0))
        # Between kills at least one promotion finishes: crashes are random, but not so dense
        # that nothing could ever complete.
        finished = sum(n for phase, n in counts.items() if phase not in OPEN_PHASES)
        if kills >= MAX_KILLS or finished <= finished_at_kill:
            continue
        held = cluster.runs_held_by(cluster.worker.pid)
        if not held:
            continue  # still starting, or idle: nothing to interrupt
        cluster.kill_worker()
        kills += 1
        finished_at_kill = finished
        kill_points.update(where for _, where in held)
        time.sleep(rng.uniform(0.0, 1.0))  # dead a while
        cluster.start_worker()
    elapsed = time.monotonic() - started

    report = cluster.report()
    promotions = report["promotions"]
    by_phase = Counter(p["phase"] for p in promotions)
    resumed = [p for p in promotions if p["resumes"]]
    # Crashes between a push landing and its record: the re-run found the push already there.
    recognised = [
        p
        for p in resumed
        if any(alias == "step-6" and "nothing to push" in msg for alias, _, msg in p["steps"])
    ]
    # The cluster allows more resumes than there are kills, so no promotion may give up.
    gave_up = [p for p in promotions if p["resumes"] >= MAX_RESUMES]
    pushes = {stage: len(cluster.ref_updates(f"stage/{stage}")) - 1 for stage in STAGES}
    figures = (
        f"chaos seed {seed}: {len(promotions)} promotions, {kills} kills "
        f"({cluster.workers_started} worker starts) in {elapsed:.0f}s; kills landed in: "
        f"{dict(sorted(kill_points.items()))}; {len(resumed)} promotions resumed "
        f"({sum(p['resumes'] for p in resumed)} resumes, {len(recognised)} found their push "
        f"already landed); {by_phase.get('Succeeded', 0)} succeeded, "
        f"{by_phase.get('Errored', 0)} errored ({len(gave_up)} after {MAX_RESUMES} resumes); "
        f"pushes per branch: {pushes}"
    )
    print(figures)
    results = Path(ROOT) / "test-results"
    results.mkdir(exist_ok=True)
    (results / "chaos-figures.txt").write_text(figures + "\n")
    # Everything the dashboard and the branches hold, for reading a failure in full.
    branches = {
        stage: [cluster.image_tag(sha) for sha, _, _ in cluster.branch_commits(f"stage/{stage}")]
        for stage in STAGES
    }
    (results / "chaos-report.json").write_text(
        json.dumps({"seed": seed, "report": report, "branches": branches}, indent=1)
    )

    # 0 lost, 0 stuck: every queued promotion is there, and ended.
    assert sorted(p["name"] for p in promotions) == sorted(queued), figures
    assert not any(p["phase"] in OPEN_PHASES for p in promotions), figures
    # 0 Errored that could have resumed: with resumes that cannot run out, every promotion ends
    # Succeeded (nothing Errored, Failed or Aborted).
    could_have_resumed = [
        p for p in promotions if p["phase"] != "Succeeded" and p["resumes"] < MAX_RESUMES
    ]
    assert could_have_resumed == [], figures
    if MAX_RESUMES > MAX_KILLS:
        assert gave_up == [], figures
    # The chaos happened: the worker was killed mid-run and runs were resumed.
    assert kills >= 5 and resumed, figures
    for p in resumed:
        if p["phase"] == "Succeeded":
            assert p["message"].endswith("after the worker stopped)"), p

    for stage in STAGES:
        check_branch(cluster, stage, [p for p in promotions if p["stage"] == stage], figures)
        stage_promotions = [p for p in promotions if p["stage"] == stage]
        if stage_promotions[-1]["phase"] == "Succeeded":
            # The dashboard agrees with the branch.
            tip = cluster.branch_commits(f"stage/{stage}")[-1][0]
            assert report["stages"][stage]["tag"] == cluster.image_tag(tip), (stage, figures)
            assert report["stages"][stage]["last"] == stage_promotions[-1]["name"], figures


def check_branch(cluster: ChaosCluster, stage: str, promotions: list[dict], figures: str) -> None:
    """0 double pushes on stage/<stage>: one fast-forward push per commit, each commit changes the
    content, and the commits are the promotions' changes in order, each once."""
    branch = f"stage/{stage}"
    updates = cluster.ref_updates(branch)
    commits = cluster.branch_commits(branch)
    assert updates and set(updates[0][0]) == {"0"}, (branch, updates)  # git-clone created it
    assert commits[0][2] == "" and cluster.image_tag(commits[0][0]) is None  # "Initial commit"
    assert len(updates) == len(commits), (branch, "pushes != commits", updates, figures)
    for (old, new), (sha, tree, parent_tree) in zip(updates[1:], commits[1:], strict=True):
        assert new == sha, (branch, "the branch moved other than by one commit per push", figures)
        assert cluster.is_ancestor(old, new), (branch, "non-fast-forward push", old, new, figures)
        assert tree != parent_tree, (branch, f"{sha} repeats its parent's content", figures)
    # Every commit is accounted for by the promotions' own records, walked in queue order beside
    # the branch. A Succeeded promotion recorded the commit its push left the branch at: its own
    # new commit, or the commit already there when its Freight was on the branch (no change).
    # A promotion that gave up (Errored after its resumes ran out) recorded none and may or may
    # not have pushed: a commit that no Succeeded promotion records must sit where such a
    # promotion ran and carry its Freight.
    shas = [sha for sha, _, _ in commits]
    position = {sha: i for i, sha in enumerate(shas)}
    at, gave_up_since = 0, []  # the branch position after the last Succeeded promotion
    for p in promotions:
        if p["phase"] != "Succeeded":
            gave_up_since.append(p)
            continue
        pushed = p["pushed"]
        assert pushed in position, (
            branch,
            p["name"],
            "recorded a commit not on the branch",
            figures,
        )
        assert cluster.image_tag(pushed) == p["tag"], (
            branch,
            p["name"],
            "branch lacks its Freight",
        )
        assert position[pushed] >= at, (branch, p["name"], "its commit precedes an earlier one's")
        # The last commit up to here may be its own; any before it came from those that gave up.
        check_gave_up(cluster, branch, shas[at + 1 : position[pushed]], gave_up_since, figures)
        at, gave_up_since = position[pushed], []
    check_gave_up(cluster, branch, shas[at + 1 :], gave_up_since, figures)


def check_gave_up(
    cluster: ChaosCluster, branch: str, shas: list[str], gave_up: list[dict], figures: str
) -> None:
    """Commits between two Succeeded promotions' records: at most one per promotion that gave
    up in between, each carrying such a promotion's Freight."""
    assert len(shas) <= len(gave_up), (branch, shas, "commits no promotion accounts for", figures)
    for sha in shas:
        assert any(q["tag"] == cluster.image_tag(sha) for q in gave_up), (
            branch,
            sha,
            "a commit no promotion accounts for",
            figures,
        )
