"""The JSON API: same actions and the same permission checks as the pages."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from projects.actions import do_create_project
from stages.actions import do_promote
from stages.models import Promotion, Stage


def post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_api_needs_authentication(client, project):
    response = client.get("/api/v1/projects/kargo-demo/stages")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


def test_list_stages_in_kargo_shape(client, users):
    client.force_login(users["carol"])
    items = client.get("/api/v1/projects/kargo-demo/stages").json()["items"]
    assert {i["metadata"]["name"] for i in items} == {"test", "uat", "prod"}
    assert items[0]["apiVersion"] == "kargo.akuity.io/v1alpha1"


def test_viewers_and_outsiders_cannot_act(client, users, freight):
    for who, status in (("carol", 403), ("dave", 404)):
        client.force_login(users[who])
        for url, body in (
            ("/api/v1/projects/kargo-demo/stages/test/promotions", {"freight": freight.name}),
            (f"/api/v1/projects/kargo-demo/freight/{freight.name}/approve?stage=prod", {}),
            ("/api/v1/projects/kargo-demo/warehouses/guestbook/refresh", {}),
            ("/api/v1/projects/kargo-demo/stages/test/refresh", {}),
            ("/api/v1/projects/kargo-demo/stages/test/verification", {}),
        ):
            response = post(client, url, body)
            assert response.status_code == status, (who, url)
            assert "error" in response.json()
    assert not Promotion.objects.exists()


def test_bad_requests_get_clear_400s(client, users, freight):
    client.force_login(users["bob"])
    url = "/api/v1/projects/kargo-demo/stages/test/promotions"
    assert post(client, url, {}).json() == {
        "error": "give exactly one of freight, freightAlias or origin"
    }
    assert client.post(url, "{not json", content_type="application/json").status_code == 400
    response = post(
        client, "/api/v1/projects/kargo-demo/stages/prod/promotions", {"freight": freight.name}
    )
    assert response.status_code == 400
    assert "not yet verified in uat" in response.json()["error"]
    assert post(client, url, {"freight": "nope"}).status_code == 404
    assert post(client, url, {"origin": "Bucket/x"}).status_code == 400
    assert client.get("/api/v1/projects/kargo-demo/freight?limit=abc").status_code == 400


def test_approve_and_refresh(client, users, freight):
    client.force_login(users["bob"])
    response = post(
        client, f"/api/v1/projects/kargo-demo/freight/{freight.alias}/approve?stage=prod"
    )
    assert response.status_code == 200
    freight.refresh_from_db()
    assert "prod" in freight.status["approvedFor"]
    assert (
        post(client, "/api/v1/projects/kargo-demo/warehouses/guestbook/refresh").status_code == 202
    )


def test_aborting_a_promotion_needs_admin_and_verification_needs_promoter(client, users, freight):
    """Kargo gives `patch` on Promotions to kargo-admin only: a promoter may start a promotion
    but not abort one. Reverify and abort verification are held at promoter (issue 8): a viewer
    may do neither."""
    pending = do_promote(Stage.objects.get(name="test"), freight, actor="test")
    urls = (
        f"/api/v1/projects/kargo-demo/promotions/{pending.name}/abort",
        "/api/v1/projects/kargo-demo/stages/test/verification",
        "/api/v1/projects/kargo-demo/stages/test/verification/abort",
    )
    client.force_login(users["bob"])
    response = post(client, urls[0])
    assert response.status_code == 403
    assert response.json() == {"error": "This needs the admin role in project kargo-demo"}
    client.force_login(users["carol"])
    for url in urls[1:]:
        response = post(client, url)
        assert response.status_code == 403, url
        assert response.json() == {"error": "This needs the promoter role in project kargo-demo"}
    client.force_login(users["alice"])
    response = post(client, urls[0])
    assert response.status_code == 200
    assert response.json()["status"]["phase"] == "Aborted"
    # The Stage has no Freight yet: nothing to verify, said plainly.
    assert post(client, urls[1]).json() == {"error": "Stage test has no Freight to verify"}
    assert post(client, urls[2]).json() == {
        "error": "Stage test has no verification in progress to abort"
    }


def test_a_stage_refresh_answers_the_token_to_wait_for(client, users):
    client.force_login(users["bob"])
    response = post(client, "/api/v1/projects/kargo-demo/stages/test/refresh")
    assert response.status_code == 202
    stage = Stage.objects.get(name="test")
    assert response.json() == {
        "refreshRequested": "Stage/test",
        "token": stage.annotations["kargo.akuity.io/refresh"],
    }


# ---------------------------------------------------------------- manifests (kargo_ui.api)

STAGE = """\
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: {name}
  namespace: {namespace}
spec:
  requestedFreight:
    - origin: {{kind: Warehouse, name: guestbook}}
      sources: {{stages: [prod]}}
"""


def apply_text(client, text, source="stages.yaml"):
    return client.post(
        f"/api/v1/projects/kargo-demo/manifests?source={source}",
        text,
        content_type="application/yaml",
    )


def test_apply_creates_and_reports_like_the_cli(client, users):
    client.force_login(users["alice"])
    text = STAGE.format(name="canary", namespace="kargo-demo")
    response = apply_text(client, text)
    assert response.status_code == 200
    assert response.json() == {"results": ["stage/canary created"]}
    assert Stage.objects.get(name="canary").upstream_names == ["prod"]
    assert apply_text(client, text).json() == {"results": ["stage/canary unchanged"]}
    # No namespace: the project in the URL, as `--project` does for the CLI.
    response = apply_text(
        client, STAGE.format(name="canary2", namespace="").replace("  namespace: \n", "")
    )
    assert response.json() == {"results": ["stage/canary2 created"]}


def test_apply_errors_are_the_clis_errors(client, users, tmp_path):
    bad = STAGE.format(name="loop", namespace="kargo-demo").replace("[prod]", "[loop]") + (
        "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n"
        "  name: web\n  namespace: kargo-demo\nspec:\n  subscriptions:\n"
        "    - git: {repoURL: 'https://example.com/x.git', colour: red}\n"
    )
    client.force_login(users["alice"])
    response = apply_text(client, bad, source="bad.yaml")
    assert response.status_code == 400
    errors = response.json()["errors"]
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(CommandError) as cli:
        call_command("kargo", "apply", "-f", str(path), stdout=io.StringIO())
    assert [e.replace("bad.yaml", str(path), 1) for e in errors] == str(cli.value).splitlines()
    assert "bad.yaml: document 2 (Warehouse/web): spec.subscriptions[0].git.colour" in errors[0]
    assert not Stage.objects.filter(name="loop").exists()
    response = apply_text(client, "kind: [unclosed", source="broken.yaml")
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("broken.yaml: line 2, column 1: invalid YAML")


def test_apply_sends_several_files_at_once(client, users):
    client.force_login(users["alice"])
    response = client.post(
        "/api/v1/projects/kargo-demo/manifests",
        {
            "source": ["dir/a.yaml", "dir/b.yaml"],
            "file": [
                SimpleUploadedFile(
                    "a.yaml", STAGE.format(name="a", namespace="kargo-demo").encode()
                ),
                SimpleUploadedFile("b.yaml", b"kind: Nope\n"),
            ],
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("dir/b.yaml: document 1")
    assert not Stage.objects.filter(name="a").exists()  # all or nothing


def test_apply_stays_inside_the_project(client, users):
    do_create_project("other", "test")
    client.force_login(users["alice"])
    response = apply_text(client, STAGE.format(name="x", namespace="other"))
    assert response.status_code == 403
    assert "metadata.namespace: 'other' is not project 'kargo-demo'" in response.json()["error"]
    task = (
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: ClusterPromotionTask\nmetadata:\n  name: t\n"
    )
    response = apply_text(client, task + "spec:\n  steps: [{uses: git-clone}]\n")
    assert response.status_code == 403
    assert "ClusterPromotionTask is cluster-scoped" in response.json()["error"]
    project = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: {}\n"
    assert apply_text(client, project.format("other")).status_code == 403
    response = apply_text(client, project.format("kargo-demo"))
    assert response.json() == {"results": ["project/kargo-demo unchanged"]}


def test_apply_and_delete_need_admin_and_get_needs_viewer(client, users):
    text = STAGE.format(name="x", namespace="kargo-demo")
    for who in ("carol", "bob"):
        client.force_login(users[who])
        assert apply_text(client, text).status_code == 403
        url = "/api/v1/projects/kargo-demo/manifests/Stage/prod"
        assert client.delete(url).status_code == 403
        assert client.get(url).status_code == 200
    client.force_login(users["dave"])
    assert client.get("/api/v1/projects/kargo-demo/manifests/Stage").status_code == 404
    assert Stage.objects.filter(name="prod").exists()


def test_get_exports_as_the_cli_prints(client, users):
    client.force_login(users["carol"])
    base = "/api/v1/projects/kargo-demo/manifests"
    listed = client.get(f"{base}/stages").json()
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["prod", "test", "uat"]
    assert client.get(f"{base}/Stage/test").json()["metadata"]["name"] == "test"
    for output in ("yaml", "table"):
        text = client.get(f"{base}/Stage/test?output={output}").content.decode()
        cli = io.StringIO()
        call_command(
            "kargo", "get", "stage", "test", "--project", "kargo-demo", "-o", output, stdout=cli
        )
        assert text == cli.getvalue().rstrip("\n") + ("\n" if output == "yaml" else "")
    assert client.get(f"{base}/Stage/nope").json() == {"error": 'Stage "nope" not found'}
    assert client.get(f"{base}/Gizmo").status_code == 400
    assert client.get(f"{base}/Stage?output=xml").status_code == 400
    assert client.get(f"{base}/ClusterPromotionTask").status_code == 403
    do_create_project("other", "test")
    projects = client.get(f"{base}/projects").json()["items"]
    assert [p["metadata"]["name"] for p in projects] == ["kargo-demo"]
    assert client.get(f"{base}/Project/other").status_code == 404


def test_delete_as_the_cli_does(client, users):
    client.force_login(users["alice"])
    url = "/api/v1/projects/kargo-demo/manifests/Stage/prod"
    assert client.delete(url).json() == {"deleted": "stage/prod deleted"}
    assert client.delete(url).status_code == 404
    assert (
        client.delete("/api/v1/projects/kargo-demo/manifests/Project/kargo-demo").status_code == 403
    )
