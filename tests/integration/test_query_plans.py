"""Every ordered list a page reads comes off an index in the page's order, on SQLite and on
PostgreSQL: the Freight timeline (its first page and a keyset page), a Warehouse's Freight (what a
Stage may take, promotion by origin), the activity list and the audit pages, a Stage's promotions
and its queue.

The SQL is the SQL the pages run: the page functions themselves are called (page_context,
recent_promotions, promotable_freight, newest_available, pending_reason, do_start_next, the audit
reads) and every statement they execute is recorded with its parameters, then explained with the
same parameters (a statement run through a server-side cursor, as `iterator()` does on
PostgreSQL, is explained as that cursor, which PostgreSQL plans for its first rows). The tables
hold thousands of rows in three projects, and PostgreSQL has ANALYZEd them: a planner that could
sort a scan instead has the statistics to prefer it, so no planner setting is forced.

Each list must name its index and sort nothing (SQLite: no `USE TEMP B-TREE`; PostgreSQL: no
Sort node), and no statement of any page read may scan a whole Freight, Event or Promotion table,
or a whole index of one (PostgreSQL: every scan of them has an index condition).

SQLite runs in this process, on the tests' database. PostgreSQL runs in a subprocess on a fresh
database on 127.0.0.1:5432 (where the scaled mode's tests run it): `migrate`, then the same
`collect_plans()` as here. Without PostgreSQL that test skips, and fails under KARGO_NO_SKIPS=1.
"""

import json
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from freight.models import Freight, Warehouse
from projects.models import Event, Project, Surface
from projects.queries import AuditFilter, audit_choices, audit_events, audit_page
from stages.actions import do_start_next
from stages.fragments import page_context, pending_reason
from stages.models import Promotion, PromotionPhase, Stage
from stages.queries import newest_available, promotable_freight, recent_promotions
from tests.e2e.servers import PYTHON, ROOT, Unavailable, clean_env, create_database, drop_database

PROJECTS = 3
ORIGINS = ("w0", "w1")
FREIGHT = 3000  # a project's, half from each Warehouse
EVENTS = 3000  # a project's
STAGES = 4  # a project's
PROMOTIONS = 500  # a Stage's
REASONS = ("PromotionCreated", "PromotionSucceeded", "FreightCreated", "FreightApproved")
ACTORS = ("user:alice", "user:bob", "controller:warehouse/w0", "api:token")
BIG_TABLES = ("freight_freight", "projects_event", "stages_promotion")

# What each read lists, how its statement is recognised, and the index it must read in order.
LIST = 'FROM "{table}" .* ORDER BY .*"{last}" {direction}'
TIMELINE = LIST.format(table="freight_freight", last="name", direction="DESC LIMIT")
EVENTS_NEWEST = LIST.format(table="projects_event", last="id", direction="DESC LIMIT")
LISTS: dict[str, list[tuple[str, str]]] = {
    "project page": [(TIMELINE, "freight_timeline"), (EVENTS_NEWEST, "event_project_newest")],
    "project page, an older timeline page": [(TIMELINE, "freight_timeline")],
    "a Stage's promotions": [
        (
            LIST.format(table="stages_promotion", last="name", direction="DESC LIMIT"),
            "promotion_stage_newest",
        ),
    ],
    "a Stage's candidates": [(TIMELINE, "freight_origin_timeline")],
    # Every Freight of the project qualifies: the timeline itself, filtered, is the cheapest.
    "a Stage's candidates from two Warehouses": [(TIMELINE, "freight_timeline")],
    "promote by origin": [
        (
            LIST.format(table="freight_freight", last="name", direction="DESC"),
            "freight_origin_timeline",
        ),
    ],
    "the queue's head": [
        (
            LIST.format(table="stages_promotion", last="id", direction="ASC LIMIT"),
            "promotion_stage_queue",
        ),
    ],
    "audit": [(EVENTS_NEWEST, "event_project_newest")],
    "audit, an older page": [(EVENTS_NEWEST, "event_project_newest")],
    "audit by reason": [(EVENTS_NEWEST, "event_project_reason_newest")],
    "audit by actor": [(EVENTS_NEWEST, "event_project_actor_newest")],
    "audit by surface": [(EVENTS_NEWEST, "event_project_surface_newest")],
}
# The filters' choices are DISTINCT values in order: SQLite reads them off the index, skipping
# duplicates. PostgreSQL has no such skip: it hashes all the project's events whatever the indexes
# (the query would need a recursive "loose index scan"), so only SQLite's plan is held here.
SQLITE_ONLY_LISTS = {
    "audit's reasons": [
        ('SELECT DISTINCT "projects_event"."reason"', "event_project_reason_newest")
    ],
    "audit's actors": [('SELECT DISTINCT "projects_event"."actor"', "event_project_actor_newest")],
}


# ---------------------------------------------------------------- the rows


def stage_spec(origins: tuple[str, ...]) -> dict:
    return {
        "requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": o}, "sources": {"direct": True}}
            for o in origins
        ],
        "promotionTemplate": {"spec": {"steps": [{"uses": "compose-output", "config": {}}]}},
    }


def own_created_at(model):
    """bulk_create keeping the rows' own created_at: auto_now_add would give them all one time,
    and pages order by it."""
    return mock.patch.object(model._meta.get_field("created_at"), "auto_now_add", False)


def seed() -> None:
    now = timezone.now()
    for p in range(PROJECTS):
        project = Project.objects.create(name=f"plans-{p}")
        Warehouse.objects.bulk_create(
            Warehouse(
                project=project,
                name=o,
                spec={"subscriptions": [{"git": {"repoURL": f"https://git.example.com/{o}.git"}}]},
            )
            for o in ORIGINS
        )
        freight = [
            Freight(
                project=project,
                name=f"{i:040x}",
                alias=f"alias-{i}",
                origin_name=ORIGINS[i % len(ORIGINS)],
                # Pairs share a timestamp: the keyset's tie-break on name matters.
                discovered_at=now - timedelta(seconds=i // 2),
            )
            for i in range(FREIGHT)
        ]
        Freight.objects.bulk_create(freight, batch_size=1000)
        held = {"name": freight[-1].name, "origin": {"kind": "Warehouse", "name": ORIGINS[0]}}
        stages = Stage.objects.bulk_create(
            Stage(
                project=project,
                name=f"s{s}",
                # The last Stage takes Freight from both Warehouses.
                spec=stage_spec(ORIGINS if s == STAGES - 1 else ORIGINS[:1]),
                # Each holds old Freight, off the timeline's first page.
                status={"freightHistory": [{"items": {"Warehouse/w0": held}}]},
            )
            for s in range(STAGES)
        )
        for s, stage in enumerate(stages):
            # Mostly finished. The first Stage runs one with a few queued behind it; the others
            # have a queue and nothing running.
            phases = [PromotionPhase.SUCCEEDED] * (PROMOTIONS - 4) + [PromotionPhase.PENDING] * 4
            if s == 0:
                phases[-5] = PromotionPhase.RUNNING
            with own_created_at(Promotion):
                Promotion.objects.bulk_create(
                    (
                        Promotion(
                            project=project,
                            stage=stage,
                            name=f"{stage.name}.{i:026d}.{held['name'][:7]}",
                            freight_name=held["name"],
                            phase=phase,
                            status={"phase": phase, "freight": held},
                            created_at=now - timedelta(seconds=PROMOTIONS - i),
                        )
                        for i, phase in enumerate(phases)
                    ),
                    batch_size=1000,
                )
        with own_created_at(Event):
            Event.objects.bulk_create(
                (
                    Event(
                        project=project,
                        reason=REASONS[i % len(REASONS)],
                        actor=ACTORS[i % len(ACTORS)],
                        message=f"event {i}",
                        surface=(Surface.BROWSER, Surface.API, Surface.CONTROLLER)[i % 3],
                        created_at=now - timedelta(seconds=EVENTS - i),
                    )
                    for i in range(EVENTS)
                ),
                batch_size=1000,
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


# ---------------------------------------------------------------- the pages' reads


@dataclass
class Statement:
    read: str  # the page read that ran it
    sql: str
    params: tuple
    server_side: bool  # run through a server-side cursor (PostgreSQL's iterator())


class Recorder:
    """An execute wrapper: records every SELECT, under the name of the read running it."""

    def __init__(self):
        self.read = ""
        self.statements: list[Statement] = []

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and not many:
            # psycopg's server-side cursors are the only ones with a name.
            server_side = hasattr(context["cursor"].cursor, "name")
            self.statements.append(Statement(self.read, sql, tuple(params or ()), server_side))
        return execute(sql, params, many, context)


def start_next_and_roll_back(stage: Stage) -> None:
    """The queue's head, taken as a worker takes it; rolled back, so no later read sees it."""
    with transaction.atomic():
        assert do_start_next(stage.id) is not None
        transaction.set_rollback(True)


def run_page_reads(recorder: Recorder) -> None:
    """Each page read once, on the middle project (rows before and after it in every table)."""
    project = Project.objects.get(name="plans-1")
    stages = {s.name: s for s in Stage.objects.filter(project=project)}
    one_origin, two_origins = stages["s0"], stages[f"s{STAGES - 1}"]
    older_freight = Freight.objects.filter(project=project)[200].name
    older_event = str(Event.objects.filter(project=project)[300].id)
    queued = Promotion.objects.filter(stage=one_origin, phase=PromotionPhase.PENDING).last()

    def audit(f: AuditFilter, before: str = ""):
        return audit_page(project, audit_events(project, f), before, 50)

    reads = {
        "project page": lambda: page_context(project, "viewer"),
        "project page, an older timeline page": lambda: page_context(
            project, "viewer", before=older_freight
        ),
        "a Stage's promotions": lambda: recent_promotions(one_origin),
        "a Stage's candidates": lambda: promotable_freight(one_origin),
        "a Stage's candidates from two Warehouses": lambda: promotable_freight(two_origins),
        "promote by origin": lambda: newest_available(one_origin, ORIGINS[0]),
        "a queued promotion's reason": lambda: pending_reason(queued),
        "the queue's head": lambda: start_next_and_roll_back(stages["s1"]),
        "audit": lambda: audit(AuditFilter()),
        "audit, an older page": lambda: audit(AuditFilter(), older_event),
        "audit by reason": lambda: audit(AuditFilter(reason=REASONS[1])),
        "audit by actor": lambda: audit(AuditFilter(actor=ACTORS[1])),
        "audit by surface": lambda: audit(AuditFilter(surface=Surface.API)),
        "audit's reasons": lambda: audit_choices(project, "reason"),
        "audit's actors": lambda: audit_choices(project, "actor"),
    }
    with connection.execute_wrapper(recorder):
        for name, read in reads.items():
            recorder.read = name
            read()


def explain(statement: Statement) -> str:
    prefix = connection.ops.explain_query_prefix()
    if statement.server_side:
        prefix += " DECLARE plan_probe NO SCROLL CURSOR WITH HOLD FOR"
    with connection.cursor() as cursor:
        cursor.execute(f"{prefix} {statement.sql}", statement.params)
        rows = cursor.fetchall()
    # SQLite: (id, parent, notused, detail) per node; PostgreSQL: one line of text per row.
    return "\n".join(row[-1] if connection.vendor == "sqlite" else row[0] for row in rows)


def collect_plans() -> list[dict]:
    """Seed, run the page reads, and explain every statement they ran."""
    seed()
    recorder = Recorder()
    run_page_reads(recorder)
    return [{"read": s.read, "sql": s.sql, "plan": explain(s)} for s in recorder.statements]


def collect_plans_to(path: str) -> None:
    """The PostgreSQL subprocess: a fresh database's schema, then its plans into `path`."""
    call_command("migrate", verbosity=0)
    Path(path).write_text(json.dumps(collect_plans()))


# ---------------------------------------------------------------- the checks


def reads_a_whole_table(plan: str, backend: str) -> list[str]:
    """The plan's scans of a whole big table, or of a whole index of one."""
    if backend == "sqlite":
        return [
            line.strip()
            for line in plan.splitlines()
            if re.match(rf"\s*SCAN ({'|'.join(BIG_TABLES)})\b", line)
        ]
    found = []
    lines = plan.splitlines()
    for i, line in enumerate(lines):
        scan = re.search(
            r"(Seq Scan|Bitmap Heap Scan|Index(?: Only)? Scan(?: Backward)? using \S+) on (\w+)",
            line,
        )
        if not scan or scan.group(2) not in BIG_TABLES:
            continue
        # The node's own lines: more indented than the node, up to its first child ("->").
        indent = len(line) - len(line.lstrip(" ->"))
        details = []
        for detail in lines[i + 1 :]:
            if detail.lstrip().startswith("->") or len(detail) - len(detail.lstrip()) <= indent:
                break
            details.append(detail)
        bounded = any(d.strip().startswith(("Index Cond:", "Recheck Cond:")) for d in details)
        if scan.group(1) == "Seq Scan" or not bounded:
            found.append(line.strip())
    return found


def list_problems(plan: str, index: str, backend: str) -> list[str]:
    """Why a list's plan does not read `index` in the list's order (nothing when it does)."""
    problems = []
    if backend == "sqlite":
        if not re.search(rf"USING (COVERING )?INDEX {index}\b", plan):
            problems.append(f"does not read {index}")
        if "USE TEMP B-TREE" in plan:
            problems.append("sorts (USE TEMP B-TREE)")
    else:
        if not re.search(rf"Scan(?: Backward)? using {index} on", plan):
            problems.append(f"does not read {index}")
        if re.search(r"\bSort\b", plan):
            problems.append("sorts (a Sort node)")
    return problems


def plan_problems(plans: list[dict], backend: str) -> list[str]:
    """Everything wrong with the pages' plans, each with the statement and its plan."""
    problems = []

    def report(entry: dict, what: str) -> None:
        problems.append(f"{entry['read']}: {what}\n  {entry['sql']}\n  {entry['plan']}")

    for entry in plans:
        for scan in reads_a_whole_table(entry["plan"], backend):
            report(entry, f"reads a whole table: {scan}")
    lists = LISTS | (SQLITE_ONLY_LISTS if backend == "sqlite" else {})
    for read, expected in lists.items():
        for pattern, index in expected:
            matching = [
                e for e in plans if e["read"] == read and re.search(pattern, e["sql"], re.S)
            ]
            if not matching:
                problems.append(f"{read}: no statement matches {pattern!r}: has the read changed?")
            for entry in matching:
                for problem in list_problems(entry["plan"], index, backend):
                    report(entry, problem)
    return problems


def test_sqlite_reads_every_list_off_its_index(db, data_dir):
    plans = collect_plans()
    assert len({e["read"] for e in plans}) == 15  # every page read ran, and ran SQL
    problems = plan_problems(plans, "sqlite")
    assert not problems, "\n\n".join(problems)


def test_postgresql_reads_every_list_off_its_index(tmp_path):
    name = f"kargo_plans_{uuid.uuid4().hex[:12]}"
    missing = ""
    try:
        create_database(name)
    except Unavailable as exc:
        missing = f"PostgreSQL on 127.0.0.1:5432 is needed for its query plans: {exc}"
    if missing and os.environ.get("KARGO_NO_SKIPS") == "1":
        pytest.fail(missing, pytrace=False)
    if missing:
        pytest.skip(missing)
    out = tmp_path / "plans.json"
    try:
        env = clean_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}",
            DJANGO_SETTINGS_MODULE="kargo_ui.settings",
            DJANGO_SECRET_KEY="test",
            KARGO_DATA_DIR=str(tmp_path),
        )
        code = (
            "import django; django.setup(); "
            "from tests.integration.test_query_plans import collect_plans_to; "
            f"collect_plans_to({str(out)!r})"
        )
        run = subprocess.run(
            [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, f"the PostgreSQL run failed:\n{run.stdout}\n{run.stderr}"
    finally:
        drop_database(name)
    plans = json.loads(out.read_text())
    assert len({e["read"] for e in plans}) == 15
    problems = plan_problems(plans, "postgresql")
    assert not problems, "\n\n".join(problems)


# Plans the two databases chose for the timeline before its index: what the checks must catch.
SQLITE_SORTED = """SEARCH freight_freight USING INDEX freight_freight_project_id_5b104932 (project_id=?)
USE TEMP B-TREE FOR ORDER BY"""
POSTGRESQL_SORTED = """Limit  (cost=0.97..21.37 rows=61 width=131)
  ->  Incremental Sort  (cost=0.97..1004.26 rows=3000 width=131)
        Sort Key: discovered_at DESC, name DESC
        Presorted Key: discovered_at
        ->  Index Scan Backward using freight_freight_discovered_at_9f6fcbc9 on freight_freight  (cost=0.29..897.00 rows=3000 width=131)
              Filter: (project_id = 2)"""


def test_the_checks_catch_a_sorted_or_whole_table_read():
    assert list_problems(SQLITE_SORTED, "freight_timeline", "sqlite") == [
        "does not read freight_timeline",
        "sorts (USE TEMP B-TREE)",
    ]
    assert reads_a_whole_table("SCAN projects_event", "sqlite") == ["SCAN projects_event"]
    assert list_problems(POSTGRESQL_SORTED, "freight_timeline", "postgresql") == [
        "does not read freight_timeline",
        "sorts (a Sort node)",
    ]
    # An index read with only a Filter reads every project's Freight.
    assert len(reads_a_whole_table(POSTGRESQL_SORTED, "postgresql")) == 1
    assert reads_a_whole_table("Seq Scan on stages_promotion  (cost=0)", "postgresql")
