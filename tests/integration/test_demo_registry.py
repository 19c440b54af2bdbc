"""The demo's image registry (issue 9, item 8): `manage.py demo` pushes demo/guestbook 1.0.0,
1.1.0 and 1.2.0 to Debian's real `docker-registry`, which it starts on 127.0.0.1 only for the
push; its Warehouse subscribes to the git repository and the image; `manage.py serve` (here its
start_demo_registry) runs the registry for discovery, and a promotion renders the image."""

import io
import socket

import pytest
from django.core.management import call_command

from freight.actions import do_discover
from freight.models import Freight, Warehouse
from kargo_ui import demo_registry
from kargo_ui.management.commands.serve import Command as ServeCommand
from stages.actions import do_promote
from stages.models import Stage
from tests.conftest import git_show
from tests.e2e.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def demo_settings(settings, data_dir):
    if not demo_registry.BINARY.exists():
        pytest.skip(
            f"{demo_registry.BINARY} is not installed (Debian package `docker-registry`; "
            "scripts/test.sh installs it)"
        )
    settings.DEMO_REGISTRY_PORT = free_port()
    # Demo mode lets the server reach loopback; these tests run without it.
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True
    return settings


def seed() -> str:
    out = io.StringIO()
    call_command("demo", "--no-auto-promotion", "--no-verification", stdout=out)
    return out.getvalue()


def subscriptions() -> list[dict]:
    warehouse = Warehouse.objects.get(project__name="kargo-demo", name="guestbook")
    return warehouse.spec["subscriptions"]


def test_the_demo_pushes_an_image_its_warehouse_tracks_and_its_stages_deploy(
    demo_settings, data_dir
):
    port = demo_settings.DEMO_REGISTRY_PORT
    image = f"127.0.0.1:{port}/demo/guestbook"
    output = seed()
    assert f"demo image: {image}" in output
    assert not demo_registry.port_in_use(port), "the demo stops its registry after the push"
    assert (data_dir / "demo" / "registry" / "config.yml").is_file()

    assert [sorted(s) for s in subscriptions()] == [["git"], ["image"]]
    assert subscriptions()[1]["image"]["repoURL"] == image
    assert subscriptions()[1]["image"]["imageSelectionStrategy"] == "SemVer"
    # The older releases' Freight carry their image too.
    older = {f.commits[0]["tag"]: f.images for f in Freight.objects.all()}
    assert [i["tag"] for i in older["v1.0.0"]] == ["1.0.0"]
    assert [i["tag"] for i in older["v1.1.0"]] == ["1.1.0"]

    registry = ServeCommand(stdout=io.StringIO()).start_demo_registry()
    assert registry is not None
    try:
        assert sorted(registry.tags()) == ["1.0.0", "1.1.0", "1.2.0"]
        warehouse = Warehouse.objects.get(project__name="kargo-demo", name="guestbook")
        freight = do_discover(warehouse.id)
        warehouse.refresh_from_db()
        assert freight is not None, warehouse.status.get("conditions")
        assert [c["tag"] for c in freight.commits] == ["v1.2.0"]
        digest = demo_registry.build_image("1.2.0").digest
        assert freight.images == [{"repoURL": image, "tag": "1.2.0", "digest": digest}]

        stage = Stage.objects.get(project__name="kargo-demo", name="test")
        promotion = do_promote(stage, freight, "tester")
        promotion.refresh_from_db()
        assert promotion.phase == "Succeeded", promotion.message
        gitops = data_dir / "demo" / "repos" / "guestbook-gitops.git"
        assert f"image: {image}:1.2.0" in git_show(gitops, "stage/test", "manifests.yaml")
    finally:
        registry.stop()
    assert not demo_registry.port_in_use(port), "serve stops its registry"

    # Seeding again pushes nothing and changes nothing: the images are in the storage already.
    again = seed()
    assert "warehouse/guestbook unchanged" in again
    assert "created" not in again


def test_a_taken_port_leaves_the_demo_without_its_image(demo_settings):
    port = demo_settings.DEMO_REGISTRY_PORT
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        output = seed()
        assert ServeCommand(stdout=io.StringIO()).start_demo_registry() is None
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert "the Warehouse tracks the app repository only" in output
    assert [sorted(s) for s in subscriptions()] == [["git"]]
    template = Stage.objects.get(project__name="kargo-demo", name="test").spec
    assert "commitFrom(vars.appRepo).Tag" in str(template)
