"""The webhook receiver endpoint (freight.receivers) over HTTP with Django's test client: the
ProjectConfig's status exports each receiver's URL, a signed delivery refreshes the Warehouses
subscribed to the repository at once, and anything unproven changes nothing."""

import hashlib
import hmac
import json
import logging

import pytest
from django.test import Client, override_settings

from freight.models import Warehouse
from freight.webhooks import MAX_BODY_BYTES
from kargo.specs import WarehouseSpec, dump
from kargo_ui.manifests import apply_text
from projects.actions import do_save_credential
from projects.models import Event, ProjectConfig
from tests.http.conftest import APP_REPO

SECRET = "gh-webhook-secret-0123456789"
REPO = "https://github.com/example-org/guestbook"

CONFIG = """
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  webhookReceivers:
  - name: gh
    github:
      secretRef:
        name: gh-secret
  - name: hub
    dockerhub:
      secretRef:
        name: hub-secret
  - name: lab
    gitlab:
      secretRef:
        name: missing-secret
"""


@pytest.fixture
def receivers(project):
    """kargo-demo with a second Warehouse subscribed to REPO, its Secrets and its ProjectConfig
    applied as a user would; returns {receiver name: status entry}."""
    Warehouse.objects.create(
        project=project,
        name="from-github",
        spec=dump(
            WarehouseSpec.model_validate({"subscriptions": [{"git": {"repoURL": REPO + ".git"}}]})
        ),
    )
    do_save_credential(project, "gh-secret", "generic", {"secret": SECRET}, "fixture")
    do_save_credential(project, "hub-secret", "generic", {"secret": "hub-token"}, "fixture")
    apply_text(CONFIG, "config.yaml", "fixture")
    config = ProjectConfig.objects.get(project=project)
    return {d["name"]: d for d in config.status["webhookReceivers"]}


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push(ref: str = "refs/heads/main", repo: str = REPO) -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "repository": {"clone_url": repo + ".git", "ssh_url": "git@github.com:x/y.git"},
            "commits": [{"id": "abc", "added": [], "modified": ["README.md"], "removed": []}],
            "head_commit": None,
        }
    ).encode()


def post(client, path: str, body: bytes, **headers):
    return client.post(path, body, content_type="application/json", headers=headers)


def refresh_of(name: str):
    return Warehouse.objects.get(name=name).refresh_requested_at


def test_the_status_lists_each_receiver_with_its_path_and_url(receivers, project):
    digest = hashlib.sha256(f"kargo-demo{'gh'}{SECRET}".encode()).hexdigest()
    assert receivers["gh"] == {
        "name": "gh",
        "path": f"/webhook/github/{digest}",
        "url": f"http://127.0.0.1:8000/webhook/github/{digest}",
    }
    assert receivers["hub"]["path"].startswith("/webhook/dockerhub/")
    # A receiver whose Secret is missing is left out, and the condition says which and why.
    assert "lab" not in receivers
    config = ProjectConfig.objects.get(project=project)
    ready = next(c for c in config.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert "'lab'" in ready["message"] and "missing-secret" in ready["message"]
    assert SECRET not in json.dumps(config.status)


def test_the_public_url_comes_from_the_setting(project):
    do_save_credential(project, "gh-secret", "generic", {"secret": SECRET}, "fixture")
    with override_settings(KARGO_PUBLIC_URL="https://kargo.example.com/ci"):
        apply_text(CONFIG, "config.yaml", "fixture")
    status = ProjectConfig.objects.get(project=project).status["webhookReceivers"]
    assert status[0]["url"].startswith("https://kargo.example.com/ci/webhook/github/")


def test_a_signed_push_refreshes_the_subscribed_warehouse_only(client, receivers, project):
    body = push()
    response = post(
        client, receivers["gh"]["path"], body, X_GitHub_Event="push", X_Hub_Signature_256=sign(body)
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"msg": "refreshed 1 warehouse(s)", "refreshed": 1}
    assert refresh_of("from-github") is not None
    assert refresh_of("guestbook") is None  # subscribed to another repository
    event = Event.objects.filter(project=project, reason="WebhookReceived").get()
    assert event.surface == "webhook"
    assert event.actor == "webhook:gh"
    assert "refreshed 1 Warehouse(s) (from-github)" in event.message


def test_a_push_to_another_branch_refreshes_nothing(client, receivers):
    body = push("refs/heads/feature")
    response = post(
        client, receivers["gh"]["path"], body, X_GitHub_Event="push", X_Hub_Signature_256=sign(body)
    )
    assert response.json()["refreshed"] == 0
    assert refresh_of("from-github") is None


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=" + "0" * 64, sign(push(), "another-secret"), sign(push("refs/heads/x"))],
)
def test_a_bad_signature_is_401_and_changes_nothing(client, receivers, project, signature):
    headers = {"X_GitHub_Event": "push"}
    if signature:
        headers["X_Hub_Signature_256"] = signature
    before = Event.objects.count()
    response = post(client, receivers["gh"]["path"], push(), **headers)
    assert response.status_code == 401
    assert SECRET not in response.content.decode()
    assert refresh_of("from-github") is None
    assert Event.objects.count() == before


def test_a_ping_answers_200(client, receivers):
    body = b'{"zen": "Design for failure.", "hook_id": 7}'
    response = post(
        client, receivers["gh"]["path"], body, X_GitHub_Event="ping", X_Hub_Signature_256=sign(body)
    )
    assert response.status_code == 200
    assert "configured correctly" in response.json()["msg"]
    assert refresh_of("from-github") is None


def test_malformed_json_is_400_with_a_message(client, receivers):
    body = b'{"ref": "refs/heads/main", "repository": '
    response = post(
        client, receivers["gh"]["path"], body, X_GitHub_Event="push", X_Hub_Signature_256=sign(body)
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid request body: ")


def test_a_body_over_the_limit_is_413_before_anything_is_parsed(client, receivers):
    # Above Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB) as well: that limit must not turn it
    # into a 400 first.
    for size in (MAX_BODY_BYTES + 1, 3 * 1024 * 1024):
        body = b" " * size
        response = post(
            client,
            receivers["gh"]["path"],
            body,
            X_GitHub_Event="push",
            X_Hub_Signature_256=sign(body),
        )
        assert response.status_code == 413
        assert str(MAX_BODY_BYTES) in response.json()["error"]
    assert refresh_of("from-github") is None


def test_unknown_paths_are_404_and_other_methods_405(client, receivers):
    path = receivers["gh"]["path"]
    assert post(client, path[:-1] + "0", push()).status_code == 404
    assert post(client, path.replace("/github/", "/gitlab/"), push()).status_code == 404
    assert post(client, "/webhook/nosuchkind/abc", push()).status_code == 404
    response = client.get(path)
    assert (response.status_code, response["Allow"]) == (405, "POST")


def test_no_login_and_no_csrf_token_are_needed(receivers):
    strict = Client(enforce_csrf_checks=True)
    body = push()
    response = post(
        strict, receivers["gh"]["path"], body, X_GitHub_Event="push", X_Hub_Signature_256=sign(body)
    )
    assert response.status_code == 200


def test_a_rotated_secret_stops_the_old_url_and_a_reapply_exports_the_new(
    client, receivers, project
):
    old = receivers["gh"]["path"]
    do_save_credential(project, "gh-secret", "generic", {"secret": "rotated"}, "fixture")
    body = push()
    headers = {"X_GitHub_Event": "push", "X_Hub_Signature_256": sign(body, "rotated")}
    assert post(client, old, body, **headers).status_code == 404
    apply_text(CONFIG, "config.yaml", "fixture")
    new = ProjectConfig.objects.get(project=project).status["webhookReceivers"][0]["path"]
    assert new != old
    assert post(client, new, body, **headers).status_code == 200


def test_docker_hub_needs_only_the_path(client, receivers, project):
    Warehouse.objects.filter(name="guestbook").update(
        spec=dump(
            WarehouseSpec.model_validate(
                {"subscriptions": [{"git": {"repoURL": APP_REPO}}, {"image": {"repoURL": "nginx"}}]}
            )
        )
    )
    body = json.dumps(
        {"push_data": {"tag": "1.27.2"}, "repository": {"repo_name": "library/nginx"}}
    ).encode()
    response = post(client, receivers["hub"]["path"], body)
    assert response.json()["refreshed"] == 1
    assert refresh_of("guestbook") is not None


def test_the_path_never_reaches_the_log(client, receivers, caplog):
    path = receivers["hub"]["path"]
    digest = path.rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO):
        post(client, path, b"not json")  # a 400 Django would log with the path
        client.get(path)
        post(client, receivers["gh"]["path"], push(), X_GitHub_Event="push")
    assert caplog.records
    assert digest not in caplog.text
    assert SECRET not in caplog.text


GENERIC = """
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  webhookReceivers:
  - name: ci
    generic:
      secretRef:
        name: ci-secret
      actions:
      - action: Refresh
        whenExpression: "request.header('X-Event') == 'built'"
        targetSelectionCriteria:
        - kind: Warehouse
          indexSelector:
            matchIndices:
            - key: subscribedURLs
              operator: Equals
              value: "${{ normalizeGit(request.body.repo) }}"
"""


def test_the_generic_receiver_refreshes_what_its_actions_select(client, receivers, project):
    do_save_credential(project, "ci-secret", "generic", {"secret": "ci-token"}, "fixture")
    apply_text(GENERIC, "config.yaml", "fixture")
    path = ProjectConfig.objects.get(project=project).status["webhookReceivers"][0]["path"]
    assert path.startswith("/webhook/generic/")
    body = json.dumps({"repo": "https://GitHub.com/example-org/guestbook.git"}).encode()
    response = post(client, path, body, X_Event="other")
    assert response.status_code == 200
    assert response.json()["results"][0]["result"] == "NotApplicable"
    assert refresh_of("from-github") is None
    response = post(client, path, body, X_Event="built")
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["selectedTargets"] == [
        {"namespace": "kargo-demo", "name": "from-github", "success": True}
    ]
    assert result["result"] == "Success"
    assert refresh_of("from-github") is not None
    assert refresh_of("guestbook") is None
