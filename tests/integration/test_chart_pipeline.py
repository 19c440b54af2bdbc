"""A chart version from a Helm repository all the way to a GitOps repository (issue 9, item 7):
a private classic chart repository is reached with a stored helm credential; the Warehouse makes
Freight of the newest chart version; a promotion writes that version into a values file with
`yaml-update` and `chartFrom()` and pushes it."""

import subprocess

import pytest

from freight.actions import do_discover
from freight.models import Warehouse
from kargo_ui.management.commands.demo import make_repo
from kargo_ui.manifests import apply_text
from projects.actions import do_create_project
from stages.actions import do_promote
from stages.models import Stage
from tests.integration.registry_servers import ChartRepoServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def charts(tmp_path, settings):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True
    server = ChartRepoServer(tmp_path / "charts", credentials=("helm-bot", "chart-s3cret"))
    server.publish("", {"podinfo": ["6.5.0", "6.7.1"]})
    yield server
    server.stop()


MANIFESTS = """
apiVersion: v1
kind: Secret
metadata:
  name: charts
  namespace: shop
  labels: {{kargo.akuity.io/cred-type: helm}}
stringData: {{repoURL: "{charts}", username: helm-bot, password: chart-s3cret}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: podinfo, namespace: shop}}
spec:
  subscriptions:
  - chart: {{repoURL: "{charts}", name: podinfo, semverConstraint: ^6.0.0}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: dev, namespace: shop}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: podinfo}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: {gitops}
          checkout: [{{branch: main, path: ./src}}]
      - uses: yaml-update
        as: bump
        config:
          path: ./src/values.yaml
          updates:
          - key: podinfo.version
            value: ${{{{ chartFrom("{charts}", "podinfo").Version }}}}
      - uses: git-commit
        config: {{path: ./src, message: "podinfo ${{{{ chartFrom('{charts}', 'podinfo').Version }}}}"}}
      - uses: git-push
        config: {{path: ./src}}
"""

VALUES = "# podinfo, kept by Kargo\npodinfo:\n  version: 6.5.0  # the chart\n  replicas: 2\n"


def test_a_private_chart_version_is_discovered_and_written_with_yaml_update(charts, data_dir):
    repos = data_dir / "repos"
    repos.mkdir(parents=True, exist_ok=True)
    gitops = repos / "gitops.git"
    make_repo(gitops, data_dir / "work", [("values", {"values.yaml": VALUES}, "")])
    do_create_project("shop", "tester")
    apply_text(MANIFESTS.format(charts=charts.url, gitops=gitops.as_uri()), "shop.yaml", "t")
    warehouse = Warehouse.objects.get(project__name="shop", name="podinfo")
    freight = do_discover(warehouse.id)
    warehouse.refresh_from_db()
    assert freight is not None, warehouse.status.get("conditions")
    assert freight.charts == [{"repoURL": charts.url, "name": "podinfo", "version": "6.7.1"}]
    promotion = do_promote(Stage.objects.get(project__name="shop", name="dev"), freight, "t")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    values = subprocess.run(
        ["git", "--git-dir", str(gitops), "show", "main:values.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Only the value changed: the comments, order and the rest survive.
    assert values == VALUES.replace("version: 6.5.0", "version: 6.7.1")
