"""Chart discovery (freight/discovery/chart.py) against real servers: a classic Helm repository
(index.yaml and .tgz files made by the test) served over HTTP on loopback, and Helm charts pushed
as OCI artifacts to Debian's `docker-registry`, started for this module on a free port."""

import pytest

from freight.actions import do_discover
from freight.discovery import DiscoveryError, discover_chart
from freight.models import Freight, Warehouse
from kargo.freight_ids import freight_id
from kargo.specs import ChartSubscription, WarehouseSpec, WarehouseStatus, dump
from projects.models import Project
from tests.integration.registry_servers import REGISTRY, ChartRepoServer, RegistryServer

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if not REGISTRY.exists():
        pytest.skip(
            f"{REGISTRY} is not installed (Debian package `docker-registry`; scripts/test.sh "
            "installs it)"
        )
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def charts(tmp_path_factory):
    server = ChartRepoServer(tmp_path_factory.mktemp("charts"))
    server.publish(
        "stable",
        {
            "podinfo": ["6.5.0", "6.7.1", "v6.6.0", "6.8.0-rc.1", "1.10", "not-a-version"],
            "redis": ["19.0.0"],
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_charts(tmp_path_factory):
    server = ChartRepoServer(tmp_path_factory.mktemp("private"), credentials=("bob", "chart-pw"))
    server.publish("", {"app": ["1.0.0"]})
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True


def chart_sub(**fields) -> ChartSubscription:
    return ChartSubscription.model_validate(fields)


def test_a_classic_repository(charts):
    found = discover_chart(chart_sub(repoURL=f"{charts.url}/stable/", name="podinfo"))
    # Loose versions count ("v6.6.0", "1.10"); a pre-release needs a constraint that names one.
    assert found.versions == ["6.8.0-rc.1", "6.7.1", "v6.6.0", "6.5.0", "1.10"]
    assert charts.asked[-1] == "/stable/index.yaml"
    constrained = chart_sub(
        repoURL=f"{charts.url}/stable", name="podinfo", semverConstraint="^6.0.0", discoveryLimit=2
    )
    assert discover_chart(constrained).versions == ["6.7.1", "v6.6.0"]
    assert discover_chart(chart_sub(repoURL=f"{charts.url}/stable", name="nginx")).versions == []


def test_classic_repository_faults(charts, private_charts):
    with pytest.raises(DiscoveryError) as missing:
        discover_chart(chart_sub(repoURL=f"{charts.url}/nowhere", name="podinfo"))
    assert "404" in str(missing.value) and f"{charts.url}/nowhere" in str(missing.value)

    (charts.root / "broken").mkdir(exist_ok=True)
    (charts.root / "broken" / "index.yaml").write_text("entries: [unclosed\n")
    with pytest.raises(DiscoveryError, match="not valid YAML"):
        discover_chart(chart_sub(repoURL=f"{charts.url}/broken", name="podinfo"))

    private = chart_sub(repoURL=private_charts.url, name="app")
    with pytest.raises(DiscoveryError, match="401"):
        discover_chart(private)
    with pytest.raises(DiscoveryError) as wrong:
        discover_chart(private, credentials=("bob", "wrong-pw-123"))
    assert "wrong-pw-123" not in str(wrong.value)
    assert discover_chart(private, credentials=("bob", "chart-pw")).versions == ["1.0.0"]

    # Apply refuses this (kargo.specs); discovery still guards specs stored before that rule.
    unnamed = ChartSubscription.model_construct(repoURL=f"{charts.url}/stable", discoveryLimit=20)
    with pytest.raises(DiscoveryError, match="name is required"):
        discover_chart(unnamed)


def test_an_oci_repository(registry):
    for version in ["0.9.0", "1.0.0", "1.1.0+build.7", "1.2.0-beta.1", "v2.0.0"]:
        registry.pusher.chart("charts/podinfo", "podinfo", version)
    url = f"oci://{registry.host}/charts/podinfo"
    found = discover_chart(chart_sub(repoURL=url))
    # Strict versions only ("v2.0.0" is none); "_" in a tag stands for "+".
    assert found.versions == ["1.2.0-beta.1", "1.1.0+build.7", "1.0.0", "0.9.0"]
    assert found.as_dict() == {"repoURL": url, "versions": found.versions}
    assert discover_chart(chart_sub(repoURL=url, semverConstraint="<1.0.0")).versions == ["0.9.0"]
    named = ChartSubscription.model_construct(repoURL=url, name="podinfo", discoveryLimit=20)
    with pytest.raises(DiscoveryError, match="name must be empty"):
        discover_chart(named)
    with pytest.raises(DiscoveryError, match="404"):
        discover_chart(chart_sub(repoURL=f"oci://{registry.host}/charts/none"))


def test_a_warehouse_makes_freight_from_charts_and_gates_it(registry, charts):
    registry.pusher.chart("charts/app", "app", "3.1.4")
    project = Project.objects.create(name="charts")
    oci = f"oci://{registry.host}/charts/app"
    classic = f"{charts.url}/stable"
    spec = {
        "freightCreationCriteria": {
            "expression": f'chartFrom("{classic}", "podinfo").Version == "6.7.1"'
            f' && chartFrom("{oci}").Version == "3.1.4"'
        },
        "subscriptions": [
            {"chart": {"repoURL": oci}},
            {"chart": {"repoURL": classic, "name": "podinfo", "semverConstraint": "<6.8.0"}},
        ],
    }
    warehouse = Warehouse.objects.create(
        project=project, name="charts", spec=dump(WarehouseSpec.model_validate(spec))
    )
    freight = do_discover(warehouse.id)
    expected = [
        {"repoURL": oci, "version": "3.1.4"},
        {"repoURL": classic, "name": "podinfo", "version": "6.7.1"},
    ]
    assert freight.charts == expected
    assert freight.name == freight_id("charts", [], [], expected)
    warehouse.refresh_from_db()
    assert warehouse.status["discoveredArtifacts"]["charts"] == [
        {"repoURL": oci, "versions": ["3.1.4"]},
        {
            "repoURL": classic,
            "name": "podinfo",
            "semverConstraint": "<6.8.0",
            "versions": ["6.7.1", "v6.6.0", "6.5.0", "1.10"],
        },
    ]
    WarehouseStatus.model_validate(warehouse.status)
    criteria = {c["type"]: c for c in warehouse.status["conditions"]}
    assert criteria["FreightCreationCriteriaSatisfied"]["status"] == "True"

    # A newer chart the criteria do not accept: no new Freight, and the Warehouse says why.
    registry.pusher.chart("charts/app", "app", "3.2.0")
    warehouse.refresh_from_db()
    warehouse.refresh_requested_at = warehouse.last_discovery_at
    warehouse.save()
    assert do_discover(warehouse.id) is None
    warehouse.refresh_from_db()
    criteria = {c["type"]: c for c in warehouse.status["conditions"]}
    assert criteria["FreightCreationCriteriaSatisfied"]["reason"] == "CriteriaNotSatisfied"
    assert Freight.objects.filter(project=project).count() == 1
