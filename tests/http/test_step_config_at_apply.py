"""An unknown field in a step's config is refused at apply, by `kargo apply` and by the apply
API alike, naming the document, the step (index and alias) and the field's path; a known
field holding an expression, and a step this server does not have, are accepted."""

import io

import pytest
from django.core.management import CommandError, call_command

from stages.models import Stage

STAGE = """\
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: canary
  namespace: kargo-demo
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: guestbook}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: https://example.com/gitops.git
            checkout: [{branch: main, path: ./src}]
        - uses: toml-update
          as: bump
          config:
            path: ./src/Cargo.toml
            updates:
              - key: package.version
                value: ${{ quote(imageFrom("x").Tag) }}
%s
        - uses: a-step-from-a-plugin
          config: {anything: goes}
"""

TASK = """\
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata:
  name: bump
  namespace: kargo-demo
spec:
  steps:
    - uses: json-parse
      config:
        path: a.json
        outputs: [{name: x, fromExpression: a, as: y}]
"""


def apply_api(client, text, source="uat.yaml"):
    return client.post(
        f"/api/v1/projects/kargo-demo/manifests?source={source}",
        text,
        content_type="application/yaml",
    )


@pytest.fixture
def admin_client(client, users):
    client.force_login(users["alice"])
    return client


def test_a_valid_template_with_expressions_and_a_plugin_step_applies(admin_client):
    response = apply_api(admin_client, STAGE % "")
    assert response.status_code == 200, response.content
    assert response.json() == {"results": ["stage/canary created"]}


def test_an_unknown_field_is_refused_with_alias_and_path(admin_client, tmp_path):
    bad = STAGE % "                createMissing: true\n            commitMessage: x"
    response = apply_api(admin_client, bad)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "uat.yaml: document 1 (Stage/canary): spec.promotionTemplate.spec.steps[1] (bump): "
        "config.updates[0].createMissing: unknown field",
        "uat.yaml: document 1 (Stage/canary): spec.promotionTemplate.spec.steps[1] (bump): "
        "config.commitMessage: unknown field",
    ]
    assert not Stage.objects.filter(name="canary").exists()
    path = tmp_path / "uat.yaml"
    path.write_text(bad)
    with pytest.raises(CommandError) as cli:
        call_command("kargo", "apply", "-f", str(path), stdout=io.StringIO())
    assert str(cli.value).splitlines() == [
        e.replace("uat.yaml", str(path), 1) for e in response.json()["errors"]
    ]


def test_a_step_without_alias_is_named_by_its_default_alias(admin_client):
    bad = STAGE.replace("            checkout:", "            chekout:")
    response = apply_api(admin_client, bad % "")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "uat.yaml: document 1 (Stage/canary): spec.promotionTemplate.spec.steps[0] (step-1): "
        "config.chekout: unknown field"
    ]


def test_promotion_tasks_are_checked_too(admin_client, tmp_path):
    response = apply_api(admin_client, TASK, source="task.yaml")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "task.yaml: document 1 (PromotionTask/bump): spec.steps[0] (step-1): "
        "config.outputs[0].as: unknown field"
    ]
    path = tmp_path / "task.yaml"
    path.write_text(TASK.replace(", as: y", ""))
    out = io.StringIO()
    call_command("kargo", "--actor", "test", "apply", "-f", str(path), stdout=out)
    assert "promotiontask/bump created" in out.getvalue()


def test_promotion_steps_are_checked_too(admin_client, freight):
    promotion = (
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n"
        "  name: by-hand\n  namespace: kargo-demo\nspec:\n  stage: test\n"
        f"  freight: {freight.name}\n  steps:\n"
        "    - uses: toml-parse\n      as: read\n"
        "      config: {path: a.toml, outputs: [{name: v, fromExpression: v}], strict: true}\n"
    )
    response = apply_api(admin_client, promotion, source="p.yaml")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "p.yaml: document 1 (Promotion/by-hand): spec.steps[0] (read): config.strict: unknown field"
    ]
