"""An image from a private registry all the way to rendered manifests (issue 9, items 4 and 7):
the registry (Debian's docker-registry behind htpasswd) is reached with a credential Secret
applied like any Kargo manifest; the Warehouse makes Freight of the newest image; a promotion
sets that image by digest with `kustomize-set-image` and `imageFrom()`, renders with
`kubectl kustomize` and pushes to a real GitOps repository."""

import subprocess

import pytest

from freight.actions import do_discover
from freight.models import Warehouse
from kargo_ui.management.commands.demo import BASE_FILES, make_repo
from kargo_ui.manifests import apply_text
from projects.actions import do_create_project
from stages.actions import do_promote
from stages.models import Stage
from tests.integration.registry_servers import HTPASSWD, REGISTRY, RegistryServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if not REGISTRY.exists() or not HTPASSWD.exists():
        pytest.skip("docker-registry and htpasswd are installed by scripts/test.sh")
    server = RegistryServer(tmp_path_factory.mktemp("registry-private"), auth="htpasswd")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True


MANIFESTS = """
apiVersion: v1
kind: Secret
metadata:
  name: registry
  namespace: shop
  labels: {{kargo.akuity.io/cred-type: image}}
stringData:
  repoURL: {image}
  username: {user}
  password: {password}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: web, namespace: shop}}
spec:
  subscriptions:
  - image: {{repoURL: {image}, imageSelectionStrategy: SemVer}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: dev, namespace: shop}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: web}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      vars:
      - {{name: image, value: "{image}"}}
      steps:
      - uses: git-clone
        config:
          repoURL: {gitops}
          checkout:
          - {{branch: main, path: ./src}}
          - {{branch: stage/dev, create: true, path: ./out}}
      - uses: git-clear
        config: {{path: ./out}}
      - uses: kustomize-set-image
        as: set-image
        config:
          path: ./src/base
          images:
          - image: demo/guestbook
            newName: ${{{{ vars.image }}}}
            digest: ${{{{ imageFrom(vars.image).Digest }}}}
      - uses: kustomize-build
        config: {{path: ./src/base, outPath: ./out/manifests.yaml}}
      - uses: git-commit
        config: {{path: ./out, message: "web ${{{{ imageFrom(vars.image).Tag }}}}"}}
      - uses: git-push
        config: {{path: ./out, targetBranch: stage/dev}}
"""


def test_a_private_image_is_discovered_with_a_stored_credential_and_deployed_by_digest(
    registry, data_dir
):
    image = f"{registry.host}/private/web"
    registry.pusher.image("private/web", "1.0.0")
    newest = registry.pusher.image("private/web", "1.1.0")
    repos = data_dir / "repos"
    repos.mkdir(parents=True, exist_ok=True)
    gitops = repos / "gitops.git"
    make_repo(gitops, data_dir / "work", [("base", dict(BASE_FILES), "")])
    do_create_project("shop", "tester")
    apply_text(
        MANIFESTS.format(
            image=image, user=registry.user, password=registry.password, gitops=gitops.as_uri()
        ),
        "shop.yaml",
        "tester",
    )
    warehouse = Warehouse.objects.get(project__name="shop", name="web")
    freight = do_discover(warehouse.id)
    warehouse.refresh_from_db()
    assert freight is not None, warehouse.status.get("conditions")
    assert freight.images == [{"repoURL": image, "tag": "1.1.0", "digest": newest}]

    promotion = do_promote(Stage.objects.get(project__name="shop", name="dev"), freight, "t")
    promotion.refresh_from_db()
    assert promotion.phase == "Succeeded", promotion.message
    rendered = subprocess.run(
        ["git", "--git-dir", str(gitops), "show", "stage/dev:manifests.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"image: {image}@{newest}" in rendered
    assert registry.password not in str(promotion.status) + str(warehouse.status)
