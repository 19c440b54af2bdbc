"""Pipeline page and websocket-fragment cost as a project grows.

Run: .venv/bin/python bench/bench_pipeline.py [--stages 10,100,300] [--freight 100,10000]
Prints, per size: queries per page, median page time, median live-update render time.
Uses its own SQLite database in a temp dir; not part of the test run.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", default="10,100,300")
    parser.add_argument("--freight", default="100,10000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="kargo-bench-")
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: str) -> None:
    os.environ.update(
        KARGO_DATA_DIR=tmp, KARGO_SQLITE_PATH=f"{tmp}/bench.sqlite3", DJANGO_SECRET_KEY="bench"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kargo_ui.settings")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from freight.models import Freight, Warehouse
    from kargo.freight_ids import freight_id
    from projects.actions import do_create_project
    from stages.fragments import render_change
    from stages.models import Stage

    user = get_user_model().objects.create_superuser("bench", "b@example.com", "bench")
    client = Client()
    client.force_login(user)
    print(
        f"{'stages':>7} {'freight':>8} {'queries':>8} {'page ms':>9} {'push ms':>9} {'page KB':>8}"
    )
    for n_stages in [int(x) for x in args.stages.split(",")]:
        for n_freight in [int(x) for x in args.freight.split(",")]:
            name = f"p{n_stages}-{n_freight}"
            project = do_create_project(name, "bench")
            git = {"repoURL": "https://git.example.com/app.git"}
            Warehouse.objects.create(
                project=project, name="w", spec={"subscriptions": [{"git": git}]}
            )
            stages = []
            for i in range(n_stages):
                # A few parallel lanes, each a chain: a realistic wide-and-deep pipeline.
                lane, depth = i % 8, i // 8
                sources = {"direct": True} if depth == 0 else {"stages": [f"s{i - 8}"]}
                stages.append(
                    Stage(
                        project=project,
                        name=f"s{i}",
                        spec={
                            "requestedFreight": [
                                {"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}
                            ],
                            "promotionTemplate": {
                                "spec": {
                                    "steps": [{"uses": "compose-output", "config": {"lane": lane}}]
                                }
                            },
                        },
                    )
                )
            Stage.objects.bulk_create(stages)
            now = timezone.now()
            freight = []
            for i in range(n_freight):
                commits = [{"repoURL": "https://git.example.com/app.git", "id": f"{i:040x}"}]
                freight.append(
                    Freight(
                        project=project,
                        name=freight_id("w", commits, [], []),
                        alias=f"f-{i}",
                        origin_name="w",
                        commits=commits,
                        discovered_at=now - timezone.timedelta(seconds=i),
                    )
                )
            Freight.objects.bulk_create(freight, batch_size=2000)
            url = f"/project/{name}/"
            queries: list[str] = []

            def count(execute, sql, *rest, queries=queries):
                queries.append(sql)
                return execute(sql, *rest)

            with connection.execute_wrapper(count):
                response = client.get(url)
            assert response.status_code == 200, response.status_code
            page_times, push_times = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                client.get(url)
                page_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                render_change(project.id, "admin", "stage", 0, uuid.uuid4().hex)
                push_times.append(time.perf_counter() - t)
            print(
                f"{n_stages:>7} {n_freight:>8} {len(queries):>8} "
                f"{statistics.median(page_times) * 1000:>9.1f} {statistics.median(push_times) * 1000:>9.1f} "
                f"{len(response.content) / 1024:>8.0f}"
            )


if __name__ == "__main__":
    main()
