"""A webhook delivery against a real git repository: everything applied as a user would (Project,
Warehouse, generic Secret, ProjectConfig), a new commit pushed to a bare repository on disk, a
GitHub-style push event for its URL posted to the receiver's exported path; the Warehouse is
refreshed and the discovery that the refresh starts (tasks run inline in tests, when the
delivery's transaction commits) makes Freight of the new commit."""

import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import textwrap
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from freight.models import Freight, Warehouse
from freight.webhooks import receiver_path
from kargo_ui.manifests import apply_text
from projects.models import Event, ProjectConfig
from tests.e2e.servers import ServerProcess, embedded_env, free_port, manage, serve_argv

SECRET = "integration-webhook-secret-42"

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Alice",
    "GIT_AUTHOR_EMAIL": "alice@example.com",
    "GIT_COMMITTER_NAME": "Alice",
    "GIT_COMMITTER_EMAIL": "alice@example.com",
}


def git(cwd, *args) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


@pytest.fixture
def remote(settings, tmp_path, data_dir):
    """A bare repository under the allowed roots and a working clone that pushes to it."""
    root = tmp_path / "repos"
    root.mkdir()
    settings.FILE_REPO_ROOTS = [str(root)]
    bare = root / "app.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", bare.as_uri(), str(work))
    git(work, "checkout", "-q", "-b", "main")

    def commit(message: str, path: str = "app.txt") -> str:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(message)
        git(work, "add", path)
        git(work, "commit", "-q", "-m", message)
        git(work, "push", "-q", "origin", "main")
        return git(work, "rev-parse", "HEAD")

    commit.url = bare.as_uri()
    return commit


def manifests(repo_url: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: kargo.akuity.io/v1alpha1
        kind: Project
        metadata:
          name: hooks
        ---
        apiVersion: v1
        kind: Secret
        metadata:
          name: github-webhook
          namespace: hooks
          labels:
            kargo.akuity.io/cred-type: generic
        stringData:
          secret: {SECRET}
        ---
        apiVersion: kargo.akuity.io/v1alpha1
        kind: Warehouse
        metadata:
          name: app
          namespace: hooks
        spec:
          interval: 1h
          subscriptions:
          - git:
              repoURL: {repo_url}
              branch: main
        ---
        apiVersion: kargo.akuity.io/v1alpha1
        kind: ProjectConfig
        metadata:
          name: hooks
          namespace: hooks
        spec:
          webhookReceivers:
          - name: github
            github:
              secretRef:
                name: github-webhook
        """
    )


def push_event(repo_url: str, sha: str) -> bytes:
    """A GitHub push event, as GitHub sends it (trimmed), for a repository at `repo_url`."""
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": sha,
            "repository": {"full_name": "example/app", "clone_url": repo_url, "ssh_url": ""},
            "pusher": {"name": "alice"},
            "commits": [{"id": sha, "added": [], "modified": ["app.txt"], "removed": []}],
            "head_commit": {"id": sha, "added": [], "modified": ["app.txt"], "removed": []},
        }
    ).encode()


def test_a_push_event_refreshes_the_warehouse_and_discovery_takes_the_new_commit(
    transactional_db, client, remote
):
    first = remote("v1")
    apply_text(manifests(remote.url), "hooks.yaml", "alice")
    warehouse = Warehouse.objects.get(name="app")
    # The apply's own discovery found the first commit.
    assert [f.commits[0]["id"] for f in Freight.objects.filter(project=warehouse.project)] == [
        first
    ]
    path = ProjectConfig.objects.get(project=warehouse.project).status["webhookReceivers"][0][
        "path"
    ]

    second = remote("v2")
    body = push_event(remote.url, second)
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        path,
        body,
        content_type="application/json",
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": signature},
    )
    assert response.status_code == 200, response.content
    assert response.json()["refreshed"] == 1

    warehouse.refresh_from_db()
    ids = [f.commits[0]["id"] for f in Freight.objects.filter(project=warehouse.project)]
    assert ids == [second, first]  # newest first
    assert (
        warehouse.status["lastFreightID"]
        == Freight.objects.filter(project=warehouse.project)[0].name
    )
    assert warehouse.refresh_requested_at is None  # the refresh was handled
    assert "lastHandledRefresh" in warehouse.status
    reasons = list(
        Event.objects.filter(project=warehouse.project, actor="webhook:github").values_list(
            "reason", flat=True
        )
    )
    assert sorted(reasons) == ["WarehouseRefreshRequested", "WebhookReceived"]


def test_an_unsigned_push_changes_nothing(transactional_db, client, remote):
    remote("v1")
    apply_text(manifests(remote.url), "hooks.yaml", "alice")
    warehouse = Warehouse.objects.get(name="app")
    path = ProjectConfig.objects.get(project=warehouse.project).status["webhookReceivers"][0][
        "path"
    ]
    second = remote("v2")
    body = push_event(remote.url, second)
    response = client.post(
        path, body, content_type="application/json", headers={"X-GitHub-Event": "push"}
    )
    assert response.status_code == 401
    assert Freight.objects.filter(project=warehouse.project).count() == 1
    assert not Freight.objects.filter(commits__0__id=second).exists()


def _freight_commits(db: Path) -> list[str]:
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        rows = conn.execute("SELECT commits FROM freight_freight").fetchall()
    return [json.loads(row[0])[0]["id"] for row in rows]


def _wait_for(what: str, check, server: ServerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f}s\n{server.tail()}", pytrace=False)
        time.sleep(0.1)


def test_a_delivery_to_a_running_server_is_answered_and_its_worker_discovers(tmp_path):
    """`manage.py serve` (daphne, the Celery worker and beat in one process): the delivery is
    answered by the web side, and the worker's discovery takes the new commit. The Warehouse
    polls hourly, so only the webhook can have started that discovery."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    root = tmp_path / "repos"
    root.mkdir()
    env = {**embedded_env(data_dir), "KARGO_FILE_REPO_ROOTS": str(root)}
    bare = root / "app.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", bare.as_uri(), str(work))
    git(work, "checkout", "-q", "-b", "main")

    (work / "app.txt").write_text("v1")
    git(work, "add", "app.txt")
    git(work, "commit", "-q", "-m", "v1")
    first = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", "main")
    (tmp_path / "hooks.yaml").write_text(manifests(bare.as_uri()))
    manage(env, "migrate", "--noinput")
    manage(env, "kargo", "apply", "-f", str(tmp_path / "hooks.yaml"))
    port = free_port()
    server = ServerProcess("serve", serve_argv(port), env, data_dir)
    try:
        server.wait_for_log("serving on", timeout=60)
        server.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        db = data_dir / "db.sqlite3"
        _wait_for("the first discovery", lambda: _freight_commits(db) == [first], server)

        (work / "app.txt").write_text("v2")
        git(work, "commit", "-q", "-am", "v2")
        second = git(work, "rev-parse", "HEAD")
        git(work, "push", "-q", "origin", "main")
        body = push_event(bare.as_uri(), second)
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        path = receiver_path("hooks", "github", "github", SECRET)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": signature,
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())["refreshed"] == 1
        _wait_for("discovery of the pushed commit", lambda: second in _freight_commits(db), server)
        assert path.rsplit("/", 1)[1] not in server.log()  # the path is a credential
    finally:
        server.stop()
