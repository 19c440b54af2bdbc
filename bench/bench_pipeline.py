"""Pipeline page and live-push cost as a project grows, beside an anchor measured in the same run.

Run: .venv/bin/python bench/bench_pipeline.py [--stages 5,500] [--freight 1000]
Prints, per size: queries per page; the median page time (warm: the render cache filled by an
earlier load, as on a running server; and cold: cache emptied first); the anchor, a bare Django
view answering the same number of bytes through the same client and middleware; their ratio;
and the median time to render the push for one Stage's change (stages.fragments.render_changes).
Every Stage holds a Freight and has a last promotion, as in a pipeline in use. Uses its own
SQLite database in a temp dir; not part of the test run.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", default="5,500")
    parser.add_argument("--freight", default="1000")
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
    os.environ["DJANGO_SETTINGS_MODULE"] = "kargo_ui.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.http import HttpResponse
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import path
    from django.utils import timezone

    from freight.models import Freight, FreightCount, Warehouse
    from kargo.freight_ids import freight_id
    from projects.actions import do_create_project
    from stages import fragments
    from stages.models import Stage

    anchor_body = {"bytes": b""}
    ANCHOR_URLS.urlpatterns = [path("bare/", lambda request: HttpResponse(anchor_body["bytes"]))]

    user = get_user_model().objects.create_superuser("bench", "b@example.com", "bench")
    client = Client()
    client.force_login(user)
    print(
        f"{'stages':>7} {'freight':>8} {'queries':>8} {'page ms':>8} {'cold ms':>8} "
        f"{'anchor ms':>9} {'ratio':>6} {'push ms':>8} {'page KB':>8}"
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
            # bulk_create skips the maintained count (Freight.save keeps it): set it as the
            # actions would have.
            FreightCount.objects.update_or_create(project=project, defaults={"total": n_freight})
            for i, stage in enumerate(stages):
                held = freight[i % len(freight)]
                stage.status = {
                    "freightHistory": [
                        {"items": {"Warehouse/w": {"name": held.name, "origin": held.origin}}}
                    ],
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Verified"}],
                    "lastPromotion": {
                        "name": f"{stage.name}.promo",
                        "finishedAt": now.isoformat(),
                        "status": {"phase": "Succeeded"},
                    },
                }
            Stage.objects.bulk_create(stages)
            url = f"/project/{name}/"
            queries: list[str] = []

            def count(execute, sql, *rest, queries=queries):
                queries.append(sql)
                return execute(sql, *rest)

            with connection.execute_wrapper(count):
                response = client.get(url)
            assert response.status_code == 200, response.status_code
            anchor_body["bytes"] = response.content
            page_times, cold_times, anchor_times, push_times = [], [], [], []
            stage = Stage.objects.filter(project=project).first()
            for _ in range(args.repeat):
                t = time.perf_counter()
                client.get(url)
                page_times.append(time.perf_counter() - t)
                fragments.CARDS.clear()
                fragments.LAYOUTS.clear()
                t = time.perf_counter()
                client.get(url)
                cold_times.append(time.perf_counter() - t)
                with override_settings(ROOT_URLCONF=__name__ + "_anchor"):
                    t = time.perf_counter()
                    client.get("/bare/")
                    anchor_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                fragments.render_changes(project.id, {("stage", stage.id)}, {"admin"}, set(), {})
                push_times.append(time.perf_counter() - t)
            page, anchor = statistics.median(page_times), statistics.median(anchor_times)
            print(
                f"{n_stages:>7} {n_freight:>8} {len(queries):>8} {page * 1000:>8.1f} "
                f"{statistics.median(cold_times) * 1000:>8.1f} {anchor * 1000:>9.1f} "
                f"{page / anchor:>6.1f} {statistics.median(push_times) * 1000:>8.1f} "
                f"{len(response.content) / 1024:>8.0f}"
            )


# The anchor's URLconf: one bare view (filled in by run()).
ANCHOR_URLS = types.ModuleType(__name__ + "_anchor")
sys.modules[ANCHOR_URLS.__name__] = ANCHOR_URLS


if __name__ == "__main__":
    main()
