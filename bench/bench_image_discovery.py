"""Discovery of an image repository with 5,000 tags: a Warehouse's first poll and a repeated poll,
against the same listing done by a plain Python script (urllib) on the same registry.

Run: .venv/bin/python bench/bench_image_discovery.py [--tags 5000] [--strategy NewestBuild]

Starts Debian's docker-registry on a free loopback port (storage in a temp dir) and pushes
--tags tags to one repository through the registry API: one shared layer, and per tag its own
config blob (its own `created` date) and manifest. A Warehouse (own SQLite database in the temp
dir) subscribes to the repository with --strategy (NewestBuild reads every tag's build date: the
case where each tag needs its manifest and config). Then:

- first poll: freight.actions.do_discover with an empty metadata cache;
- repeated poll: do_discover again, nothing changed in the registry;
- anchor, listing: a plain urllib script lists the tags (the one request both sides must make);
- anchor, listing and metadata: the same script also GETs every tag's manifest and config blob
  (8 threads, as discovery reads new tags), the work a poll without a cache repeats every time.

Registry requests are counted at the registry, from its access log, by kind. Prints figures;
asserts nothing; not part of the test run. The temp dir is removed at the end.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.integration.registry_servers
TMP = Path(tempfile.mkdtemp(prefix="kargo-bench-images-"))
# Django reads its settings once, at setup: the temp data dir and database must be named first.
os.environ.update(
    KARGO_DATA_DIR=str(TMP / "data"),
    KARGO_SQLITE_PATH=str(TMP / "bench.sqlite3"),
    KARGO_EGRESS_ALLOW_LOCAL="1",  # the registry is on loopback
    DJANGO_SECRET_KEY="bench",
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kargo_ui.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from freight.actions import do_discover  # noqa: E402
from freight.models import ImageMetadata, Warehouse  # noqa: E402
from kargo.specs import WarehouseSpec, dump  # noqa: E402
from projects.models import Project  # noqa: E402
from tests.integration.registry_servers import (  # noqa: E402
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    REGISTRY,
    RegistryServer,
)

REPO = "bench/app"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def push_tags(registry: RegistryServer, count: int) -> None:
    push = registry.pusher
    layer = push.blob(REPO, b"one shared layer")

    def one(i: int) -> None:
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        blob = push.blob(REPO, json.dumps(config).encode())
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **blob},
            "layers": [{"mediaType": OCI_LAYER, **layer}],
        }
        push.manifest(REPO, f"1.{i // 1000}.{i % 1000}", body, OCI_MANIFEST)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def kinds(requests: list[tuple[str, str, int]]) -> Counter:
    counted = Counter()
    for method, path, _ in requests:
        if path.split("?")[0].endswith("/tags/list"):
            counted["tags/list"] += 1
        elif "/manifests/" in path:
            counted[f"manifest {method}"] += 1
        elif "/blobs/" in path:
            counted[f"blob {method}"] += 1
        else:
            counted[f"other {method}"] += 1
    return counted


def measured(registry: RegistryServer, work) -> tuple[float, Counter, object]:
    before = len(registry.requests())
    start = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - start
    time.sleep(0.5)  # the registry writes its access log line after answering
    return elapsed, kinds(registry.requests()[before:]), result


def anchor_list(registry: RegistryServer) -> list[str]:
    url = f"http://{registry.host}/v2/{REPO}/tags/list"
    tags = []
    while url:
        with urllib.request.urlopen(url, timeout=60) as answer:
            tags += json.load(answer)["tags"]
            link = answer.headers.get("Link", "")
        url = f"http://{registry.host}{link[1 : link.index('>')]}" if link else ""
    return tags


def anchor_metadata(registry: RegistryServer) -> int:
    tags = anchor_list(registry)
    base = f"http://{registry.host}/v2/{REPO}"

    def one(tag: str) -> str:
        request = urllib.request.Request(
            f"{base}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            manifest = json.load(answer)
        with urllib.request.urlopen(
            f"{base}/blobs/{manifest['config']['digest']}", timeout=60
        ) as answer:
            return json.load(answer)["created"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return len(list(pool.map(one, tags)))


def show(label: str, elapsed: float, counted: Counter) -> None:
    total = sum(counted.values())
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(counted.items()))
    print(f"  {label:<38} {elapsed * 1000:>9.0f} ms  {total:>6} requests  ({detail})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument(
        "--strategy", default="NewestBuild", choices=["NewestBuild", "SemVer", "Lexical"]
    )
    args = parser.parse_args()
    if not REGISTRY.exists():
        sys.exit(f"{REGISTRY} is not installed (apt-get install docker-registry)")
    logging.disable(logging.INFO)  # httpx logs every request at INFO
    call_command("migrate", verbosity=0)
    registry = RegistryServer(TMP)
    try:
        start = time.perf_counter()
        push_tags(registry, args.tags)
        print(
            f"pushed {args.tags} tags to {registry.host}/{REPO} "
            f"in {time.perf_counter() - start:.1f} s"
        )
        project = Project.objects.create(name="bench")
        spec = {
            "subscriptions": [
                {
                    "image": {
                        "repoURL": f"{registry.host}/{REPO}",
                        "imageSelectionStrategy": args.strategy,
                    }
                }
            ]
        }
        warehouse = Warehouse.objects.create(
            project=project, name="bench", spec=dump(WarehouseSpec.model_validate(spec))
        )

        print(f"\n{args.strategy}, discoveryLimit 20, {args.tags} tags:")
        first = measured(registry, lambda: do_discover(warehouse.id))
        show("first poll (empty cache)", first[0], first[1])
        freight = first[2]
        print(
            f"    -> Freight {freight.images[0]['tag'] if freight else None}; "
            f"{ImageMetadata.objects.count()} tags cached"
        )
        for i in range(2):
            again = measured(registry, lambda: do_discover(warehouse.id))
            show(f"repeated poll {i + 1}", again[0], again[1])
        warehouse.refresh_from_db()
        healthy = {c["type"]: c["status"] for c in warehouse.status["conditions"]}["Healthy"]
        print(f"    -> Healthy {healthy}")

        listing = measured(registry, lambda: anchor_list(registry))
        show("anchor: urllib listing", listing[0], listing[1])
        metadata = measured(registry, lambda: anchor_metadata(registry))
        show("anchor: urllib listing + metadata", metadata[0], metadata[1])
        print(
            f"\nrepeated poll / anchor listing: {again[0] / listing[0]:.1f}x time; "
            f"first poll / anchor listing + metadata: {first[0] / metadata[0]:.1f}x time"
        )
    finally:
        registry.stop()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
