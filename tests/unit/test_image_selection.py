"""The pure rules of image and chart discovery (freight/discovery/image.py, chart.py,
registry.py) and of freightCreationCriteria (freight/actions.py): naming and scheme as
go-containerregistry has them, Kargo's orderings, build dates, platforms and annotations."""

from datetime import UTC, datetime, timedelta

import pytest

from freight.actions import criteria_functions, criteria_satisfied
from freight.discovery import DiscoveryError
from freight.discovery.chart import order_versions
from freight.discovery.image import (
    ImageInfo,
    Platform,
    annotations_for,
    image_created,
    lexical_order,
    newest_build_order,
    parse_platform,
    platform_of,
    semver_order,
)
from freight.discovery.registry import RegistryError, parse_image_repo
from freight.discovery.tags import tag_name_filter
from kargo.expressions import ExpressionError
from kargo.specs import ImageSubscription, validate_document
from kargo.versions import Constraint

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("repo_url", "name", "base_url"),
    [
        ("nginx", "index.docker.io/library/nginx", "https://index.docker.io"),
        ("docker.io/nginx", "index.docker.io/library/nginx", "https://index.docker.io"),
        ("bitnami/redis", "index.docker.io/bitnami/redis", "https://index.docker.io"),
        # Only a first component with "." or ":" is a registry host.
        ("localhost/app", "index.docker.io/localhost/app", "https://index.docker.io"),
        ("ghcr.io/akuity/kargo", "ghcr.io/akuity/kargo", "https://ghcr.io"),
        ("localhost:5000/app", "localhost:5000/app", "http://localhost:5000"),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b", "http://127.0.0.1:5000"),
        ("[::1]:5000/app", "[::1]:5000/app", "http://[::1]:5000"),
        ("10.0.0.5:5000/app", "10.0.0.5:5000/app", "https://10.0.0.5:5000"),
    ],
)
def test_image_repository_names_and_schemes(repo_url, name, base_url):
    repo = parse_image_repo(repo_url)
    assert (repo.name, repo.base_url) == (name, base_url)


@pytest.mark.parametrize("repo_url", ["ghcr.io/Upper/case", "ghcr.io/a//b", "ghcr.io/-a"])
def test_invalid_repository_paths_are_refused(repo_url):
    with pytest.raises(RegistryError, match="invalid image repository"):
        parse_image_repo(repo_url)


def names(**fields):
    return tag_name_filter(ImageSubscription.model_validate({"repoURL": "x/y", **fields}))


TAGS = ["v1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest", "1.3", "v1.1.1", "1.1.1"]


def test_semver_order():
    everything = Constraint("")
    assert semver_order(TAGS, names(), everything, strict=True) == [
        "2.0.0",
        "1.2.0-rc.1",
        "v1.1.1",  # equal versions: reverse lexical order of the tag
        "1.1.1",
        "1.1.0",
        "v1.0.0",
    ]
    loose = semver_order(TAGS, names(), Constraint("~1.1 || ~1.3"), strict=False)
    assert loose == ["1.3", "v1.1.1", "1.1.1", "1.1.0"]
    filtered = names(allowTagsRegexes=["^v"], ignoreTagsRegexes=["1\\.1"])
    assert semver_order(TAGS, filtered, everything, strict=True) == ["v1.0.0"]


def test_lexical_order():
    assert lexical_order(["a", "c", "b10", "b9"], names(ignoreTagsRegexes=["^a$"])) == [
        "c",
        "b9",
        "b10",
    ]


def test_newest_build_order():
    images = [
        ("old", ImageInfo("d1", T0)),
        ("undated", ImageInfo("d2", None)),
        ("new-a", ImageInfo("d3", T0 + timedelta(days=1))),
        ("new-b", ImageInfo("d4", T0 + timedelta(days=1))),
    ]
    assert [tag for tag, _ in newest_build_order(images)] == ["new-b", "new-a", "old", "undated"]


def test_build_dates():
    created = "org.opencontainers.image.created"
    legacy = "org.label-schema.build-date"
    later, earlier = "2026-02-01T00:00:00Z", "2025-01-01T00:00:00Z"
    assert image_created({created: later}, {legacy: earlier}, T0) == datetime(
        2026, 2, 1, tzinfo=UTC
    )
    assert image_created({legacy: later}, {}, T0) == datetime(2026, 2, 1, tzinfo=UTC)
    assert image_created({}, {legacy: later}, T0) == datetime(2026, 2, 1, tzinfo=UTC)
    assert image_created({}, {legacy: earlier}, T0) == T0  # a label earlier than `created`
    assert image_created({created: "yesterday"}, {}, T0) == T0  # not RFC 3339: ignored
    assert image_created({}, {}, None) is None


def test_platforms_and_annotations():
    index = ImageInfo(
        "sha256:i",
        T0,
        {"source": "index", "shared": "index"},
        [
            Platform("linux", "amd64"),
            Platform("linux", "arm64", "v8", annotations={"shared": "arm"}),
            Platform("linux", "arm", "v7"),
            Platform("linux", "arm", ""),
        ],
    )
    assert platform_of(index, parse_platform("linux/arm64")).variant == "v8"
    # An exact match (no variant) is preferred over a variant one.
    assert platform_of(index, parse_platform("linux/arm")).variant == ""
    assert platform_of(index, parse_platform("linux/arm/v7")).variant == "v7"
    assert platform_of(index, parse_platform("linux/arm64/v9")) is None
    assert platform_of(index, parse_platform("windows/amd64")) is None
    assert annotations_for(index, parse_platform("linux/arm64")) == {
        "source": "index",
        "shared": "arm",
    }
    assert annotations_for(index, None) == {"source": "index", "shared": "index"}
    with pytest.raises(DiscoveryError, match="invalid platform"):
        parse_platform("linux")


def test_chart_version_order():
    versions = ["1.0.0", "v1.1.0", "1.2", "1.3.0-beta.1", "junk", "1.1.0"]
    assert order_versions(versions, Constraint(""), strict=False) == [
        "1.3.0-beta.1",
        "1.2",
        "v1.1.0",
        "1.1.0",
        "1.0.0",
    ]
    # OCI tags: strict versions only, no "v".
    assert order_versions(versions, Constraint("<1.3.0"), strict=True) == ["1.1.0", "1.0.0"]


DISCOVERED = {
    "git": [
        {
            "repoURL": "https://github.com/example/app.git",
            "commits": [{"id": "abc", "tag": "v1.0.0", "subject": "Release"}],
        }
    ],
    "images": [
        {
            "repoURL": "nginx",
            "references": [
                {
                    "tag": "1.27.0",
                    "digest": "sha256:d",
                    "annotations": {"k": "v"},
                    "createdAt": "2026-01-01T00:00:00Z",
                }
            ],
        }
    ],
    "charts": [
        {"repoURL": "oci://ghcr.io/example/charts/app", "versions": ["2.0.0", "1.0.0"]},
        {"repoURL": "https://charts.example.com", "name": "redis", "versions": ["19.0.0"]},
    ],
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('commitFrom("https://GitHub.com/example/app").Tag == "v1.0.0"', True),
        ('commitFrom("https://github.com/example/app").Subject == "Release"', True),
        ('imageFrom("docker.io/library/nginx").Tag == "1.27.0"', True),
        ('imageFrom("nginx").Annotations.k == "v"', True),
        ('imageFrom("nginx").CreatedAt.Year() == 2026', True),
        ('chartFrom("oci://ghcr.io/example/charts/app").Version == "2.0.0"', True),
        ('chartFrom("https://charts.example.com", "redis").Version == "19.0.0"', True),
        ('chartFrom("https://charts.example.com", "nginx") == nil', True),
        ('imageFrom("ghcr.io/other/image") == nil', True),
        ('"true"', True),
        ('"0"', False),
    ],
)
def test_freight_creation_criteria_over_discovered_artifacts(expression, expected):
    assert criteria_satisfied(expression, DISCOVERED) is expected


@pytest.mark.parametrize("expression", ['"maybe"', 'imageFrom("a", "b", "c")', "1 +"])
def test_criteria_errors(expression):
    with pytest.raises(ExpressionError):
        criteria_satisfied(expression, DISCOVERED)


def test_criteria_functions_answer_in_the_promotion_shapes():
    functions = criteria_functions(DISCOVERED)
    assert functions["chartFrom"]("oci://ghcr.io/example/charts/app") == {
        "RepoURL": "oci://ghcr.io/example/charts/app",
        "Name": "",
        "Version": "2.0.0",
    }
    image = functions["imageFrom"]("nginx")
    assert {k: image[k] for k in ("RepoURL", "Tag", "Digest", "Annotations")} == {
        "RepoURL": "nginx",
        "Tag": "1.27.0",
        "Digest": "sha256:d",
        "Annotations": {"k": "v"},
    }


def test_invalid_subscriptions_are_refused_at_apply_with_the_field_path():
    doc = {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p"},
        "spec": {
            "subscriptions": [
                {"image": {"repoURL": "nginx", "ignoreTagsRegexes": ["-rc$", "(unclosed"]}},
                {"image": {"repoURL": "nginx", "imageSelectionStrategy": "Digest"}},
                {"chart": {"repoURL": "oci://ghcr.io/a/b", "name": "b"}},
                {"chart": {"repoURL": "https://charts.example.com"}},
                {"image": {"repoURL": "nginx", "platform": "linux"}},
            ]
        },
    }
    errors = {error.path: error.message for error in validate_document(doc)}
    assert "missing )" in errors["spec.subscriptions[0].image.ignoreTagsRegexes[1]"]
    assert "Digest" in errors["spec.subscriptions[1].image"]
    assert "must be empty" in errors["spec.subscriptions[2].chart"]
    assert "must be non-empty" in errors["spec.subscriptions[3].chart"]
    assert "<os>/<arch>" in errors["spec.subscriptions[4].image.platform"]


def test_constraints_and_tag_regexes_are_refused_at_apply_with_their_field_path():
    doc = {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p"},
        "spec": {
            "subscriptions": [
                {"git": {"repoURL": "https://g.example.com/a.git", "semverConstraint": ">=1 <<2"}},
                {"image": {"repoURL": "reg.example.com/a", "constraint": "not-a-range!"}},
                {"chart": {"repoURL": "oci://r.example.com/c", "semverConstraint": "~~1"}},
                {"git": {"repoURL": "https://g.example.com/b.git", "allowTagsRegexes": ["(x"]}},
                # Digest's constraint is a tag name, not a range.
                {"image": {"repoURL": "reg.example.com/b", "imageSelectionStrategy": "Digest",
                           "constraint": "latest!"}},
            ]
        },
    }  # fmt: skip
    assert [str(e) for e in validate_document(doc)] == [
        "spec.subscriptions[0].git.semverConstraint: invalid semverConstraint '>=1 <<2'",
        "spec.subscriptions[1].image: constraint: invalid semverConstraint 'not-a-range!'",
        "spec.subscriptions[2].chart.semverConstraint: invalid semverConstraint '~~1'",
        "spec.subscriptions[3].git.allowTagsRegexes[0]: invalid regular expression '(x': "
        "missing ): (x",
    ]
