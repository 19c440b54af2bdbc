"""Image discovery (freight/discovery/image.py, registry.py) against Debian's real
`docker-registry`, started per module on a free loopback port: anonymous, behind htpasswd (basic)
auth and behind a bearer token service. Images are pushed by the tests through the registry API.
Requests are counted at the registry, from its access log."""

from datetime import UTC, datetime, timedelta

import pytest

from freight.actions import do_discover
from freight.discovery import DiscoveryError, discover_image
from freight.discovery import registry as registry_module
from freight.discovery.registry import RegistryClient, parse_image_repo
from freight.models import Freight, ImageMetadata, Warehouse
from kargo.freight_ids import freight_id
from kargo.specs import ImageSubscription, WarehouseSpec, WarehouseStatus, dump
from projects.models import Project
from tests.integration.registry_servers import (
    HTPASSWD,
    OCI_MANIFEST,
    REGISTRY,
    PagingProxy,
    RegistryServer,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _require_registry():
    if not REGISTRY.exists():
        pytest.skip(
            f"{REGISTRY} is not installed (Debian package `docker-registry`; scripts/test.sh "
            "installs it)"
        )


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    _require_registry()
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    _require_registry()
    if not HTPASSWD.exists():
        pytest.skip(f"{HTPASSWD} is not installed (Debian package `apache2-utils`)")
    server = RegistryServer(tmp_path_factory.mktemp("registry-basic"), auth="htpasswd")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    _require_registry()
    server = RegistryServer(tmp_path_factory.mktemp("registry-token"), auth="token")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    # Every server here is on loopback, which the egress policy refuses by default.
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], True


@pytest.fixture
def project():
    return Project.objects.create(name="images")


_repos = iter(range(10_000))


@pytest.fixture
def repo(registry):
    """A fresh repository name in the anonymous registry."""
    return f"team/app{next(_repos)}"


def sub(registry, repo, **fields) -> ImageSubscription:
    return ImageSubscription.model_validate({"repoURL": f"{registry.host}/{repo}", **fields})


def tags_of(found) -> list[str]:
    return [image.tag for image in found]


def manifest_gets(registry, since: int) -> list[str]:
    return [
        path
        for method, path, _ in registry.requests()[since:]
        if method in ("GET", "HEAD") and "/manifests/" in path
    ]


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


def test_semver_picks_the_highest_allowed_versions(registry, repo, project):
    push = registry.pusher
    digests = {}
    for i, tag in enumerate(["v1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest", "1.3", "v1.1.1"]):
        digests[tag] = push.image(repo, tag, created=T0 + timedelta(hours=i))

    found = discover_image(sub(registry, repo), project.id)
    # strictSemvers (the default) leaves out "1.3"; "latest" is no version.
    assert tags_of(found) == ["2.0.0", "1.2.0-rc.1", "v1.1.1", "1.1.0", "v1.0.0"]
    assert found[0].digest == digests["2.0.0"]
    assert found[0].created_at == T0 + timedelta(hours=3)

    constrained = sub(registry, repo, constraint="^1.0.0", strictSemvers=False, discoveryLimit=2)
    assert tags_of(discover_image(constrained, project.id)) == ["1.3", "v1.1.1"]
    # A pre-release only satisfies a constraint that names one (Masterminds' rule).
    pre = sub(registry, repo, constraint=">=1.2.0-0, <2")
    assert tags_of(discover_image(pre, project.id)) == ["1.2.0-rc.1"]


def test_lexical_and_tag_regexes(registry, repo, project):
    for tag in ["build-001", "build-010", "build-002", "nightly", "build-003-debug"]:
        registry.pusher.image(repo, tag, created=T0)
    found = discover_image(
        sub(
            registry,
            repo,
            imageSelectionStrategy="Lexical",
            allowTagsRegexes=["^build-"],
            ignoreTagsRegexes=["debug$"],
        ),
        project.id,
    )
    assert tags_of(found) == ["build-010", "build-002", "build-001"]


def test_newest_build_reads_build_dates(registry, repo, project):
    push = registry.pusher
    push.image(repo, "a", created=T0 + timedelta(days=3))
    # The annotation wins over the config's `created`.
    push.image(
        repo,
        "b",
        created=T0,
        annotations={"org.opencontainers.image.created": "2026-01-10T00:00:00Z"},
    )
    # A later build-date label wins over `created`; an earlier one does not.
    push.image(
        repo, "c", created=T0, labels={"org.label-schema.build-date": "2026-01-05T00:00:00Z"}
    )
    push.image(
        repo,
        "d",
        created=T0 + timedelta(days=2),
        labels={"org.label-schema.build-date": "2025-01-01T00:00:00Z"},
    )
    found = discover_image(sub(registry, repo, imageSelectionStrategy="NewestBuild"), project.id)
    assert tags_of(found) == ["b", "c", "a", "d"]
    assert found[0].annotations == {"org.opencontainers.image.created": "2026-01-10T00:00:00Z"}
    assert found[0].as_dict()["createdAt"] == "2026-01-10T00:00:00Z"
    limited = sub(registry, repo, imageSelectionStrategy="NewestBuild", discoveryLimit=1)
    assert tags_of(discover_image(limited, project.id)) == ["b"]


def test_digest_follows_a_mutable_tag_with_one_head_per_poll(registry, repo, project):
    push = registry.pusher
    first_body, _ = push.image_manifest(repo, created=T0)
    first = push.manifest(repo, "latest", first_body, OCI_MANIFEST)
    follow = sub(registry, repo, imageSelectionStrategy="Digest", constraint="latest")
    assert [(i.tag, i.digest) for i in discover_image(follow, project.id)] == [("latest", first)]

    # Unchanged: one HEAD, nothing else.
    before = len(registry.requests())
    assert discover_image(follow, project.id)[0].digest == first
    asked = registry.requests()[before:]
    assert [(m, p.rsplit("/", 1)[-1]) for m, p, _ in asked] == [("HEAD", "latest")]

    # Moved: the HEAD shows a new digest, whose manifest (and config) is read once.
    second = push.image(repo, "latest", created=T0 + timedelta(days=1))
    before = len(registry.requests())
    assert discover_image(follow, project.id)[0].digest == second
    methods = [m for m, p, _ in registry.requests()[before:] if "/manifests/" in p]
    assert methods == ["HEAD", "GET"]

    # Moved to a digest the repository's cache knows (another tag has it): the HEAD is enough.
    push.manifest(repo, "v1", first_body, OCI_MANIFEST)
    lexical = sub(registry, repo, imageSelectionStrategy="Lexical", allowTagsRegexes=["^v1$"])
    assert tags_of(discover_image(lexical, project.id)) == ["v1"]
    push.manifest(repo, "latest", first_body, OCI_MANIFEST)
    before = len(registry.requests())
    assert discover_image(follow, project.id)[0].digest == first
    assert [m for m, _, _ in registry.requests()[before:]] == ["HEAD"]

    # No such tag: nothing discovered, as Kargo.
    missing = sub(registry, repo, imageSelectionStrategy="Digest", constraint="nope")
    assert discover_image(missing, project.id) == []


def test_a_multi_arch_index_and_platform(registry, repo, project):
    push = registry.pusher
    digest = push.index(
        repo,
        "1.0.0",
        [
            {"os": "linux", "arch": "amd64", "created": T0},
            {
                "os": "linux",
                "arch": "arm64",
                "variant": "v8",
                "created": T0 + timedelta(hours=5),
                "annotations": {"com.example.flavour": "arm"},
            },
        ],
        annotations={"org.opencontainers.image.source": "https://example.com/app"},
    )
    push.image(repo, "1.1.0", created=T0 + timedelta(days=1), arch="amd64")

    found = discover_image(sub(registry, repo), project.id)
    assert tags_of(found) == ["1.1.0", "1.0.0"]
    index = found[1]
    # The index's digest (what a Stage deploys), the newest platform's build date.
    assert index.digest == digest
    assert index.created_at == T0 + timedelta(hours=5)
    assert index.annotations == {"org.opencontainers.image.source": "https://example.com/app"}

    arm = discover_image(sub(registry, repo, platform="linux/arm64"), project.id)
    # Only the index has linux/arm64 (as v8); its entry's annotations overlay the index's.
    assert tags_of(arm) == ["1.0.0"]
    assert arm[0].digest == digest
    assert arm[0].annotations == {
        "org.opencontainers.image.source": "https://example.com/app",
        "com.example.flavour": "arm",
    }
    # A plain image counts for the platform in its config.
    amd = discover_image(sub(registry, repo, platform="linux/amd64"), project.id)
    assert tags_of(amd) == ["1.1.0", "1.0.0"]
    assert discover_image(sub(registry, repo, platform="windows/amd64"), project.id) == []


# --------------------------------------------------------------------------------------------
# The metadata cache and paging
# --------------------------------------------------------------------------------------------


def test_a_repeated_poll_makes_no_manifest_requests_for_tags_already_seen(
    registry, repo, project, monkeypatch
):
    # Pages of two tags, through a proxy that pages as distribution v3 does (Link header).
    monkeypatch.setattr(registry_module, "TAGS_PAGE_SIZE", 2)
    proxy = PagingProxy(registry)
    push = registry.pusher
    for i in range(5):
        push.image(repo, f"1.0.{i}", created=T0 + timedelta(hours=i))
    newest = sub(proxy, repo, imageSelectionStrategy="NewestBuild")

    def manifests(since):
        return [p for m, p in proxy.asked[since:] if "/manifests/" in p]

    assert tags_of(discover_image(newest, project.id)) == [f"1.0.{i}" for i in range(4, -1, -1)]
    assert sum(p.endswith("/tags/list") for _, p in proxy.asked) == 3  # 2 + 2 + 1
    assert len(manifests(0)) == 5
    assert ImageMetadata.objects.filter(project=project).count() == 5

    before = len(proxy.asked)
    assert tags_of(discover_image(newest, project.id))[0] == "1.0.4"
    assert [p for _, p in proxy.asked[before:] if not p.endswith("/tags/list")] == []

    # A new tag is read, and only it; a deleted tag leaves the cache.
    push.image(repo, "1.0.9", created=T0 + timedelta(days=1))
    gone = ImageMetadata.objects.get(project=project, tag="1.0.0")
    push.delete_manifest(repo, gone.digest)
    before = len(proxy.asked)
    assert tags_of(discover_image(newest, project.id)) == [
        "1.0.9",
        "1.0.4",
        "1.0.3",
        "1.0.2",
        "1.0.1",
    ]
    assert manifests(before) == [f"/v2/{repo}/manifests/1.0.9"]
    assert not ImageMetadata.objects.filter(project=project, tag="1.0.0").exists()
    proxy.stop()


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def test_basic_auth(basic_registry, project):
    registry = basic_registry
    registry.pusher.image("private/app", "1.0.0", created=T0)
    subscription = sub(registry, "private/app")

    with pytest.raises(DiscoveryError) as refused:
        discover_image(subscription, project.id)
    assert f"{registry.host}/private/app" in str(refused.value)
    assert "401" in str(refused.value) and "credentials are needed" in str(refused.value)

    with pytest.raises(DiscoveryError) as wrong:
        discover_image(subscription, project.id, credentials=("alice", "not-the-pw-xyz"))
    assert "401" in str(wrong.value) and "not-the-pw-xyz" not in str(wrong.value)

    found = discover_image(subscription, project.id, credentials=(registry.user, registry.password))
    assert tags_of(found) == ["1.0.0"]
    assert registry.password not in registry.log()


def test_bearer_token_handshake(token_registry, project):
    registry = token_registry
    registry.pusher.index(
        "private/multi", "2.0.0", [{"os": "linux", "arch": "amd64", "created": T0}]
    )
    subscription = sub(registry, "private/multi")
    client = RegistryClient(
        parse_image_repo(subscription.repoURL),
        subscription.repoURL,
        credentials=(registry.user, registry.password),
    )
    found = discover_image(subscription, project.id, client=client)
    assert tags_of(found) == ["2.0.0"]
    # One token, asked for once with the registry's service and the repository's pull scope,
    # then used for every request.
    assert client.requests["token"] == 1
    assert registry.token_server.asked[-1] == {
        "scope": "repository:private/multi:pull",
        "service": "kargo-test-registry",
        "authenticated": True,
    }
    # Anonymous: the token service gives a token without access, which the registry refuses.
    with pytest.raises(DiscoveryError, match="401"):
        discover_image(subscription, project.id)


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_a_registry_that_is_down_or_lacks_the_repository(registry, project, tmp_path):
    with pytest.raises(DiscoveryError) as missing:
        discover_image(sub(registry, "no/such-repo"), project.id)
    assert "404" in str(missing.value) and f"{registry.host}/no/such-repo" in str(missing.value)

    down = ImageSubscription.model_validate({"repoURL": "127.0.0.1:1/some/app"})
    with pytest.raises(DiscoveryError) as refused:
        discover_image(down, project.id)
    assert "127.0.0.1:1/some/app" in str(refused.value)


def test_malformed_manifests_are_named(registry, repo, project):
    push = registry.pusher
    config = push.blob(repo, b"not json at all")
    layer = push.blob(repo, b"layer")
    push.manifest(
        repo,
        "1.0.0",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        },
        "application/vnd.oci.image.manifest.v1+json",
    )
    with pytest.raises(DiscoveryError) as bad:
        discover_image(sub(registry, repo), project.id)
    message = str(bad.value)
    assert "malformed" in message and f"{registry.host}/{repo}" in message
    assert "not a JSON object" in message

    push.index(repo + "-empty", "1.0.0", [], attestation=True)  # only an "unknown" platform
    with pytest.raises(DiscoveryError, match="empty manifest list or OCI index"):
        discover_image(sub(registry, repo + "-empty"), project.id)


def test_loopback_is_refused_unless_allowed(registry, repo, project, settings):
    settings.EGRESS_ALLOW_LOCAL = False
    registry.pusher.image(repo, "1.0.0", created=T0)
    with pytest.raises(DiscoveryError) as refused:
        discover_image(sub(registry, repo), project.id)
    assert f"{registry.host}/{repo}" in str(refused.value)


# --------------------------------------------------------------------------------------------
# Warehouses: Freight, status and conditions
# --------------------------------------------------------------------------------------------


def warehouse_with(project, name: str, spec: dict) -> Warehouse:
    return Warehouse.objects.create(
        project=project, name=name, spec=dump(WarehouseSpec.model_validate(spec))
    )


def conditions(warehouse) -> dict:
    warehouse.refresh_from_db()
    return {c["type"]: c for c in warehouse.status.get("conditions", [])}


def test_a_warehouse_makes_freight_from_the_newest_image(registry, repo, project):
    digest = registry.pusher.image(
        repo, "1.0.0", created=T0, annotations={"org.opencontainers.image.title": "app"}
    )
    url = f"{registry.host}/{repo}"
    warehouse = warehouse_with(
        project,
        "app",
        {
            "subscriptions": [
                {"name": "app-image", "image": {"repoURL": url, "platform": "linux/amd64"}}
            ]
        },
    )
    freight = do_discover(warehouse.id)
    expected = {
        "repoURL": url,
        "tag": "1.0.0",
        "digest": digest,
        "annotations": {"org.opencontainers.image.title": "app"},
        "subscriptionName": "app-image",
    }
    assert freight.images == [expected]
    # Kargo's recipe: repoURL:tag@digest, with the subscription name.
    assert freight.name == freight_id("app", [], [expected], [])
    warehouse.refresh_from_db()
    artifacts = warehouse.status["discoveredArtifacts"]
    assert artifacts["images"] == [
        {
            "repoURL": url,
            "platform": "linux/amd64",
            "subscriptionName": "app-image",
            "references": [
                {
                    "tag": "1.0.0",
                    "digest": digest,
                    "annotations": {"org.opencontainers.image.title": "app"},
                    "createdAt": "2026-01-01T00:00:00Z",
                }
            ],
        }
    ]
    WarehouseStatus.model_validate(warehouse.status)  # Kargo's shape

    # The registry breaks: the Warehouse says which repository and why, the Freight stays.
    registry.pusher.image(repo, "1.1.0", created=T0)
    warehouse.spec = dump(
        WarehouseSpec.model_validate(
            {"subscriptions": [{"image": {"repoURL": f"{registry.host}/{repo}-gone"}}]}
        )
    )
    warehouse.generation += 1
    warehouse.save()
    assert do_discover(warehouse.id) is None
    found = conditions(warehouse)
    assert found["Healthy"]["reason"] == "DiscoveryFailed"
    assert f"{registry.host}/{repo}-gone" in found["Healthy"]["message"]
    assert "404" in found["Healthy"]["message"]
    assert Freight.objects.filter(project=project).count() == 1


@pytest.mark.parametrize(
    ("expression", "created", "status", "reason"),
    [
        ('imageFrom("{url}").Tag == "2.0.0"', True, "True", "CriteriaSatisfied"),
        ('imageFrom("{url}").Tag == "3.0.0"', False, "False", "CriteriaNotSatisfied"),
        ('noSuchFunction("{url}")', False, "False", "CriteriaEvaluationFailed"),
        ("imageFrom(", False, "False", "CriteriaEvaluationFailed"),
    ],
)
def test_freight_creation_criteria(registry, repo, project, expression, created, status, reason):
    registry.pusher.image(repo, "2.0.0", created=T0)
    url = f"{registry.host}/{repo}"
    warehouse = warehouse_with(
        project,
        "gated",
        {
            "freightCreationCriteria": {"expression": expression.replace("{url}", url)},
            "subscriptions": [{"image": {"repoURL": url}}],
        },
    )
    freight = do_discover(warehouse.id)
    assert (freight is not None) == created
    condition = conditions(warehouse)["FreightCreationCriteriaSatisfied"]
    assert (condition["status"], condition["reason"]) == (status, reason)
    if reason == "CriteriaNotSatisfied":
        assert expression.replace("{url}", url) in condition["message"]
    # What was discovered is kept either way (for a person to assemble Freight from).
    warehouse.refresh_from_db()
    assert warehouse.status["discoveredArtifacts"]["images"][0]["references"][0]["tag"] == "2.0.0"
