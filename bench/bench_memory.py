"""Memory of `manage.py serve` at 500 Stages, beside the same server freshly started.

Run: .venv/bin/python bench/bench_memory.py [--stages 500] [--freight 1000] [--loads 20]

Starts the embedded server (`manage.py serve`: web, Celery worker and beat in one process) on a
temp data dir with the demo, reads its resident memory (VmRSS) once it answers, then applies a
pipeline of --stages Stages and --freight Freight, loads the project page --loads times (the
render cache fills) plus every Stage's drawer once, and reads VmRSS again. Prints both and their
ratio (the goal: at most 1.3x). Asserts nothing; not part of the test run.
"""

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import servers  # noqa: E402

PASSWORD = "bench-memory-pw-1"


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def pipeline_manifests(n_stages: int, n_freight: int) -> list[str]:
    """YAML files of at most 900 documents each (apply refuses more than 1000 per file)."""
    docs = []
    for i in range(n_stages):
        upstream = "test" if i < 8 else f"s{i - 8}"
        docs.append(
            f"""apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: s{i}
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: guestbook}}
    sources: {{stages: [{upstream}]}}
  promotionTemplate:
    spec:
      steps:
      - uses: compose-output
        config: {{lane: "{i % 8}"}}
"""
        )
    for i in range(n_freight):
        docs.append(
            f"""apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: "{i:040x}"
  namespace: kargo-demo
origin: {{kind: Warehouse, name: guestbook}}
commits:
- repoURL: https://git.example.com/app.git
  id: "{i:040x}"
"""
        )
    return ["---\n".join(docs[i : i + 900]) for i in range(0, len(docs), 900)]


def login(client: httpx.Client) -> None:
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/login/",
        data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": str(client.base_url) + "/login/"},
    )
    assert response.status_code in (200, 302), response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", type=int, default=500)
    parser.add_argument("--freight", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kargo-bench-memory-"))
    server = None
    try:
        env = servers.embedded_env(tmp)
        env["DJANGO_SUPERUSER_PASSWORD"] = PASSWORD
        servers.seed_demo(env)
        servers.manage(
            env, "createsuperuser", "--noinput", "--username", "bench", "--email", "b@x.io"
        )
        manifests = []
        for i, text in enumerate(pipeline_manifests(args.stages, args.freight)):
            manifests.append(tmp / f"pipeline-{i}.yaml")
            manifests[-1].write_text(text)
        port = servers.free_port()
        server = servers.ServerProcess("serve", servers.serve_argv(port), env, tmp)
        base = f"http://127.0.0.1:{port}"
        server.wait_for_http(base + "/login/")
        time.sleep(2)  # the worker and beat threads settle
        fresh = rss_mb(server.pid)
        for manifest in manifests:
            servers.manage(env, "kargo", "apply", "-f", str(manifest), timeout=900)
        with httpx.Client(base_url=base, follow_redirects=True, timeout=120) as client:
            login(client)
            started = time.perf_counter()
            for _ in range(args.loads):
                assert client.get("/project/kargo-demo/").status_code == 200
            pages = time.perf_counter() - started
            for i in range(0, args.stages, max(1, args.stages // 50)):
                client.get(f"/project/kargo-demo/stage/s{i}/", headers={"HX-Request": "true"})
        grown = rss_mb(server.pid)
        print(
            f"{'stages':>7} {'freight':>8} {'fresh MB':>9} {'after MB':>9} {'ratio':>6} {'page ms':>8}"
        )
        print(
            f"{args.stages:>7} {args.freight:>8} {fresh:>9.1f} {grown:>9.1f} "
            f"{grown / fresh:>6.2f} {pages / args.loads * 1000:>8.1f}"
        )
        print("goal: ratio at most 1.3")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
