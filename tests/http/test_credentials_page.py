"""The credentials settings page and the JSON API behind `kargo-ui create|get|delete credentials`:
admins only, CSRF-protected, and no secret value ever in a page or an answer."""

import json

from django.test import Client

from projects.credentials import lookup
from projects.models import Credential, Project
from projects.tokens import do_create_token

URL = "/project/kargo-demo/credentials/"
API = "/api/v1/projects/kargo-demo/credentials"
PASSWORD = "Sup3r-s3cret-9d2f1b"


def add(client, **fields):
    data = {
        "name": "gitops",
        "type": "git",
        "repo_url": "https://git.example.com/org/gitops.git",
        "username": "bot",
        "password": PASSWORD,
    }
    data.update(fields)
    return client.post(URL, data)


def test_only_admins_see_the_credentials_page(client, users):
    for who, status in (("alice", 200), ("bob", 403), ("carol", 403), ("dave", 404)):
        client.force_login(users[who])
        assert client.get(URL).status_code == status
        assert add(client).status_code in ((302,) if who == "alice" else (status,))
    client.logout()
    assert client.get(URL).status_code == 302
    assert Credential.objects.count() == 1


def test_posting_without_the_csrf_token_is_refused(users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["alice"])
    assert add(client).status_code == 403
    assert not Credential.objects.exists()


def test_an_admin_adds_edits_and_deletes_without_the_password_ever_shown(client, users):
    client.force_login(users["alice"])
    assert add(client).status_code == 302
    project = Project.objects.get(name="kargo-demo")
    assert lookup(project.id, "git", "https://git.example.com/org/gitops") == ("bot", PASSWORD)
    page = client.get(URL).content.decode()
    assert 'data-credential="gitops"' in page and "password set" in page and "bot" in page
    assert PASSWORD not in page
    edit = client.get(URL + "?edit=gitops").content.decode()
    assert PASSWORD not in edit and 'value="https://git.example.com/org/gitops.git"' in edit
    # Saving with a blank password keeps the stored one.
    assert add(client, username="bot2", password="").status_code == 302
    assert lookup(project.id, "git", "https://git.example.com/org/gitops") == ("bot2", PASSWORD)
    # Bad input says what is wrong, with no value in it.
    bad = add(client, name="other", repo_url="(", regex="on", password="x" + PASSWORD)
    assert bad.status_code == 400 and b"invalid regular expression" in bad.content
    assert PASSWORD.encode() not in bad.content
    assert client.post(URL, {"delete": "gitops"}).status_code == 302
    assert not Credential.objects.exists()


def test_generic_credentials_from_the_page(client, users):
    client.force_login(users["alice"])
    response = client.post(
        URL, {"name": "slack", "type": "generic", "data": f"token={PASSWORD}\nchannel=ops"}
    )
    assert response.status_code == 302
    page = client.get(URL).content.decode()
    assert "2 values set" in page and PASSWORD not in page
    bad = client.post(URL, {"name": "x", "type": "generic", "data": "no equals sign"})
    assert bad.status_code == 400 and b"data line 1: write KEY=VALUE" in bad.content


def test_the_api_creates_lists_and_deletes_with_stars_for_values(client, users):
    project = Project.objects.get(name="kargo-demo")
    _, admin = do_create_token(project, "ci-admin", "admin", "test")
    _, viewer = do_create_token(project, "ci-viewer", "viewer", "test")
    body = {
        "name": "charts",
        "type": "helm",
        "data": {"repoURL": "oci://ghcr.io/org/charts", "username": "u", "password": PASSWORD},
    }
    denied = client.post(
        API, json.dumps(body), "application/json", HTTP_AUTHORIZATION=f"Bearer {viewer}"
    )
    assert denied.status_code == 403
    created = client.post(
        API, json.dumps(body), "application/json", HTTP_AUTHORIZATION=f"Bearer {admin}"
    )
    assert created.status_code == 201 and created.json() == {"name": "charts", "result": "created"}
    again = client.post(
        API, json.dumps(body), "application/json", HTTP_AUTHORIZATION=f"Bearer {admin}"
    )
    assert again.status_code == 400 and "already exists" in again.json()["error"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {admin}"}
    table = client.get(API, {"output": "table"}, **auth).content.decode()
    assert "charts" in table and "password=***" in table and PASSWORD not in table
    listed = client.get(API, **auth).json()
    assert listed["items"][0]["stringData"]["password"] == "***"
    assert PASSWORD not in json.dumps(listed)
    yaml_text = client.get(f"{API}/charts", {"output": "yaml"}, **auth).content.decode()
    assert "password: '***'" in yaml_text and PASSWORD not in yaml_text
    assert client.get(API, HTTP_AUTHORIZATION=f"Bearer {viewer}").status_code == 403
    assert client.delete(f"{API}/charts", **auth).json() == {"deleted": "secret/charts deleted"}
    assert client.delete(f"{API}/charts", **auth).status_code == 404


def test_apply_through_the_api_keeps_secrets_inside_the_project(client, users):
    project = Project.objects.get(name="kargo-demo")
    _, admin = do_create_token(project, "ci-admin", "admin", "test")
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: kargo-shared-resources\n"
        "  labels: {kargo.akuity.io/cred-type: generic}\nstringData: {token: abc}\n"
    )
    response = client.post(
        "/api/v1/projects/kargo-demo/manifests?source=s.yaml",
        text,
        "application/yaml",
        HTTP_AUTHORIZATION=f"Bearer {admin}",
    )
    assert response.status_code == 403
    assert "shared resources are applied on the server" in response.json()["error"]
    response = client.post(
        "/api/v1/projects/kargo-demo/manifests?source=s.yaml",
        text.replace("kargo-shared-resources", "kargo-demo"),
        "application/yaml",
        HTTP_AUTHORIZATION=f"Bearer {admin}",
    )
    assert response.status_code == 200 and response.json() == {"results": ["secret/s created"]}
