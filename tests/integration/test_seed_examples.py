"""The examples of Kargo's "Working with Stages" page (shared/seed/working-with-stages.txt) are
accepted unchanged, including its older step fields, and run as far as this server has steps."""

import io

import yaml
from django.core.management import call_command

from freight.models import Freight
from stages.actions import do_promote
from stages.models import Stage
from tests.conftest import git_show
from tests.unit.test_schemas import SEED_ANALYSIS_TEMPLATE, SEED_STAGES


def seed_stage_text() -> str:
    """The seed page's Stage with its promotion template and its verification (the page shows
    them as separate snippets of one Stage), exactly as the schema tests keep them."""
    stage = yaml.safe_load(SEED_STAGES[3])
    stage["spec"]["verification"] = yaml.safe_load(SEED_STAGES[5])["spec"]["verification"]
    return yaml.safe_dump(stage, sort_keys=False)


WAREHOUSE = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: my-warehouse
  namespace: kargo-demo
spec:
  subscriptions:
  - image:
      repoURL: public.ecr.aws/nginx/nginx
"""
SEED_STAGE = seed_stage_text() + "---" + WAREHOUSE + "---\n" + SEED_ANALYSIS_TEMPLATE.strip() + "\n"


def test_the_seed_page_examples_apply_unchanged(demo, tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(SEED_STAGE)
    out = io.StringIO()
    call_command("kargo", "apply", "-f", str(path), stdout=out)
    assert "stage/test configured" in out.getvalue()
    assert "warehouse/my-warehouse created" in out.getvalue()
    assert "analysistemplate/kargo-demo created" in out.getvalue()


def test_the_seed_template_runs_up_to_the_step_this_server_lacks(demo, data_dir, tmp_path):
    """With the seed's GitOps repo and image swapped for local ones, the seed's steps through
    git-push work as written (messageFromSteps, branch); argocd-update is not built yet and
    errors clearly instead of being skipped silently."""
    gitops = data_dir / "demo" / "repos" / "guestbook-gitops.git"
    stage = (
        seed_stage_text()
        .replace("https://github.com/example/repo.git", gitops.as_uri())
        .replace("public.ecr.aws/nginx/nginx", "demo/guestbook")
        .replace("name: my-warehouse", "name: guestbook")
    )
    path = tmp_path / "seed.yaml"
    path.write_text(stage)
    call_command("kargo", "apply", "-f", str(path), stdout=io.StringIO())
    freight = Freight.objects.filter(project=demo).first()
    # The seed's kustomize-set-image names the image without a tag: it comes from the Freight.
    Freight.objects.filter(id=freight.id).update(
        images=[{"repoURL": "demo/guestbook", "tag": "1.27.0", "digest": "sha256:" + "b" * 64}]
    )
    promotion = do_promote(
        Stage.objects.get(name="test"), Freight.objects.get(id=freight.id), actor="user:x"
    )
    promotion.refresh_from_db()
    statuses = [s["status"] for s in promotion.status["stepExecutionMetadata"]]
    assert statuses == ["Succeeded"] * 6 + ["Errored"]
    assert "unknown step 'argocd-update'" in promotion.message
    assert "image: demo/guestbook:1.27.0" in git_show(gitops, "stage/test", "manifests.yaml")


def test_the_seed_stage_exports_with_the_same_spec(demo, tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(SEED_STAGE)
    call_command("kargo", "apply", "-f", str(path), stdout=io.StringIO())
    out = io.StringIO()
    call_command(
        "kargo", "get", "stage", "test", "--project", "kargo-demo", "-o", "yaml", stdout=out
    )
    exported = yaml.safe_load(out.getvalue())
    assert exported["spec"] == yaml.safe_load(seed_stage_text())["spec"]
