"""A webhook delivery against a real git repository: everything applied as a user would (Project,
Warehouse, generic Secret, ProjectConfig), a new commit pushed to a bare repository on disk, a
GitHub-style push event for its URL posted to the receiver's exported path; the Warehouse is
refreshed and the discovery that the refresh starts (tasks run inline in tests, when the
delivery's transaction commits) makes Freight of the new commit."""

import hashlib
import hmac
import json
import os
import subprocess
import textwrap

import pytest

from freight.models import Freight, Warehouse
from kargo_ui.manifests import apply_text
from projects.models import Event, ProjectConfig

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
