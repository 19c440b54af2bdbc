"""Freight IDs, collection IDs, aliases and URL normalisation (freight/ids.py).

The expected IDs below were computed by hand from Kargo's recipe
(pkg/api/freight.go GenerateFreightID): the part strings are spelled out so a
reader can check them, and the hex digests are pinned so an accidental change
to the recipe fails loudly. Kargo's own TestGenerateFreightID only checks that
the ID is stable and changes with the content (it pins no digest), so there are
no upstream digest vectors to copy; the normalisation tables, however, are
Kargo's own test cases (pkg/urls/git_test.go, pkg/urls/helm_test.go).
"""

import hashlib
import re

import pytest

from kargo.freight_ids import (
    collection_id,
    freight_hash_parts,
    freight_id,
    generate_alias,
    normalize_chart_url,
    normalize_git_url,
)

SHA = "1234567890abcdef1234567890abcdef12345678"
DIGEST = "sha256:" + "a" * 64


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# --------------------------------------------------------------------------
# Freight IDs: hand-computed vectors
# --------------------------------------------------------------------------


def test_single_commit_vector():
    preimage = f"Warehouse/my-warehouse:https://github.com/example/repo:{SHA}"
    expected = "6112ab65657238e1147d6d66a13f976bbcfdc727"
    assert sha1(preimage) == expected
    # The repo URL is normalised first: case, ".git" and the trailing slash go.
    commits = [{"repoURL": "https://GitHub.com/Example/Repo.git/", "id": SHA}]
    assert freight_id("my-warehouse", commits, [], []) == expected


def test_mixed_artifacts_vector():
    commits = [{"repoURL": "https://github.com/example/repo", "id": SHA, "tag": "v1.2.3"}]
    images = [{"repoURL": "example/nginx", "tag": "1.27.0", "digest": DIGEST}]
    charts = [
        # A classic repository: Go's path.Join collapses "//" after the scheme.
        {"repoURL": "https://charts.example.com/stable", "name": "redis", "version": "19.0.0"},
        # An OCI repository: "oci://" is dropped, the chart name is empty.
        {"repoURL": "oci://GHCR.io/example/charts/podinfo", "name": "", "version": "6.7.1"},
    ]
    parts = [
        f"example/nginx:1.27.0@{DIGEST}",
        "ghcr.io/example/charts/podinfo:6.7.1",
        f"https://github.com/example/repo:v1.2.3:{SHA}",
        "https:/charts.example.com/stable/redis:19.0.0",
    ]
    assert freight_hash_parts(commits, images, charts) == parts  # already sorted
    expected = "96600e9c6d36d5959bf5e8defe28e9d9a1a8cf1f"
    assert sha1("Warehouse/wh:" + "|".join(parts)) == expected
    assert freight_id("wh", commits, images, charts) == expected


def test_artifact_vector():
    artifacts = [{"artifactType": "generic", "subscriptionName": "my-sub", "version": "1.0.0"}]
    expected = "dcd9017e1839efa96782eac9bcafbc49e55f0050"
    assert sha1("Warehouse/wh:generic:my-sub:1.0.0") == expected
    assert freight_id("wh", [], [], [], artifacts) == expected


def test_subscription_name_is_appended_when_set():
    commit = {"repoURL": "https://github.com/example/repo", "id": "abc"}
    named = {**commit, "subscriptionName": "frontend"}
    expected = "5b96ced3336f3462f2d261a2897cca76f892bb42"
    assert sha1("Warehouse/wh:https://github.com/example/repo:abc:frontend") == expected
    assert freight_id("wh", [named], [], []) == expected
    # Unnamed (or empty-named) subscriptions add nothing to the part.
    assert freight_id("wh", [commit], [], []) == sha1(
        "Warehouse/wh:https://github.com/example/repo:abc"
    )
    assert freight_id("wh", [{**commit, "subscriptionName": ""}], [], []) == freight_id(
        "wh", [commit], [], []
    )


@pytest.mark.parametrize(
    "item_kind,item,suffix",
    [
        ("images", {"repoURL": "nginx", "tag": "1", "digest": "d"}, "nginx:1@d"),
        ("charts", {"repoURL": "oci://ghcr.io/x", "name": "c", "version": "1"}, "ghcr.io/x/c:1"),
    ],
)
def test_subscription_name_applies_to_images_and_charts(item_kind, item, suffix):
    kwargs = {"commits": [], "images": [], "charts": []}
    kwargs[item_kind] = [{**item, "subscriptionName": "s1"}]
    assert freight_id("wh", **kwargs) == sha1(f"Warehouse/wh:{suffix}:s1")
    kwargs[item_kind] = [item]
    assert freight_id("wh", **kwargs) == sha1(f"Warehouse/wh:{suffix}")


def test_ordering_does_not_matter():
    a = {"repoURL": "https://github.com/example/a", "id": "1"}
    b = {"repoURL": "https://github.com/example/b", "id": "2"}
    img1 = {"repoURL": "x/one", "tag": "1", "digest": "d1"}
    img2 = {"repoURL": "x/two", "tag": "2", "digest": "d2"}
    assert freight_id("wh", [a, b], [img1, img2], []) == freight_id("wh", [b, a], [img2, img1], [])


def test_everything_in_the_recipe_changes_the_id():
    base = {"repoURL": "https://github.com/example/repo", "id": SHA}
    reference = freight_id("wh", [base], [], [])
    assert freight_id("other", [base], [], []) != reference  # origin
    assert freight_id("wh", [{**base, "id": "f" * 40}], [], []) != reference  # commit
    # A new tag on the same commit is new Freight (Kargo's reason for the tag part).
    assert freight_id("wh", [{**base, "tag": "v1"}], [], []) != reference
    image = {"repoURL": "nginx", "tag": "latest", "digest": "sha256:1"}
    assert freight_id("wh", [], [image], []) != freight_id(
        "wh", [], [{**image, "digest": "sha256:2"}], []
    )


def test_fields_outside_the_recipe_do_not_change_the_id():
    base = {"repoURL": "https://github.com/example/repo", "id": SHA}
    decorated = {**base, "branch": "main", "message": "hello", "author": "a <a@x>"}
    assert freight_id("wh", [decorated], [], []) == freight_id("wh", [base], [], [])
    image = {"repoURL": "nginx", "tag": "1", "digest": "d"}
    assert freight_id("wh", [], [{**image, "annotations": {"k": "v"}}], []) == freight_id(
        "wh", [], [image], []
    )


def test_image_repo_urls_are_not_normalised():
    # Kargo hashes the image repoURL as given (unlike git and chart URLs).
    one = freight_id(
        "wh", [], [{"repoURL": "docker.io/library/nginx", "tag": "1", "digest": "d"}], []
    )
    two = freight_id("wh", [], [{"repoURL": "nginx", "tag": "1", "digest": "d"}], [])
    assert one != two


def test_equivalent_chart_urls_give_one_id():
    def chart_id(url):
        return freight_id("wh", [], [], [{"repoURL": url, "name": "", "version": "1.0.0"}])

    assert chart_id("oci://docker.io/example/chart") == chart_id("example/chart")
    assert chart_id("OCI://Registry-1.Docker.io/example/chart") == chart_id("example/chart")


def test_file_urls_work_and_keep_their_case():
    commit = {"repoURL": "file:///srv/Git/App.git", "id": "abc"}
    assert freight_id("wh", [commit], [], []) == sha1("Warehouse/wh:file:///srv/Git/App.git:abc")


# --------------------------------------------------------------------------
# Collection IDs and aliases
# --------------------------------------------------------------------------


def test_collection_id():
    assert collection_id(["b", "a"]) == sha1("a,b") == "5d8b1241b0484dd20c2cfeca6f692becfbab5d18"
    assert collection_id(["a", "b"]) == collection_id(["b", "a"])
    assert collection_id([]) == sha1("")


def test_generate_alias_shape_and_uniqueness():
    taken: set[str] = set()
    for _ in range(50):
        alias = generate_alias(taken)
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+(-[0-9a-f]{4})?", alias)
        assert alias not in taken
        taken.add(alias)


def test_generate_alias_avoids_taken(monkeypatch):
    import kargo.freight_ids as ids

    slugs = iter(["brave-otter"] * 150 + ["calm-heron"])
    monkeypatch.setattr(ids.coolname, "generate_slug", lambda n: next(slugs))
    alias = generate_alias({"brave-otter"})
    # 100 collisions, then the suffixed fallback still avoids the taken name.
    assert alias != "brave-otter"
    assert alias.startswith("brave-otter-")


# --------------------------------------------------------------------------
# Normalisation: Kargo's own test tables
# --------------------------------------------------------------------------

# pkg/urls/git_test.go (http/https cases plus the whitespace cases).
KARGO_GIT_CASES = {
    "https://not a url": "https://not a url",
    "http://github.com/example/repo?foo=bar": "http://github.com/example/repo?foo=bar",
    "not even remotely a url": "not even remotely a url",
    "https://github.com /example/repo": "https://github.com /example/repo",
    "https://github.com/example%20repo": "https://github.com/example%20repo",
    "https://github.com": "https://github.com",
    "https://github.com/": "https://github.com",
    "https://foo:bar@github.com": "https://github.com",
    "https://foo:bar@github.com/": "https://github.com",
    "https://github.com/example/repo": "https://github.com/example/repo",
    "https://github.com/example/repo/": "https://github.com/example/repo",
    "https://github.com/example/repo.git": "https://github.com/example/repo",
    "https://github.com/example/repo.git/": "https://github.com/example/repo",
    "https://localhost:8443/example/repo": "https://localhost:8443/example/repo",
    "https://localhost:8443/example/repo/": "https://localhost:8443/example/repo",
    "https://localhost:8443/example/repo.git": "https://localhost:8443/example/repo",
    "https://localhost:8443/example/repo.git/": "https://localhost:8443/example/repo",
    "https://foo:bar@github.com/example/repo": "https://github.com/example/repo",
    "https://foo:bar@github.com/example/repo/": "https://github.com/example/repo",
    "https://foo:bar@github.com/example/repo.git": "https://github.com/example/repo",
    "https://foo:bar@github.com/example/repo.git/": "https://github.com/example/repo",
    "https://foo:bar@localhost:8443/example/repo": "https://localhost:8443/example/repo",
    "https://foo:bar@localhost:8443/example/repo/": "https://localhost:8443/example/repo",
    "https://foo:bar@localhost:8443/example/repo.git": "https://localhost:8443/example/repo",
    "https://foo:bar@localhost:8443/example/repo.git/": "https://localhost:8443/example/repo",
    " \ufeffhttps://github.com/example/repo": "https://github.com/example/repo",
    "https://github.com/example/repo\ufeff": "https://github.com/example/repo",
    " https://github.com/example/repo ": "https://github.com/example/repo",
    " \t\nhttps://github.com/example/repo\t\n ": "https://github.com/example/repo",
    "\u00a0https://github.com/example/repo\u00a0": "https://github.com/example/repo",
    "\u200bhttps://github.com/example/repo\u200b": "https://github.com/example/repo",
    "\ufeff\ufeffhttps://github.com/example/repo": "https://github.com/example/repo",
}


@pytest.mark.parametrize("given,expected", KARGO_GIT_CASES.items())
def test_normalize_git_url_kargo_cases(given, expected):
    assert normalize_git_url(given) == expected


@pytest.mark.parametrize(
    "given,expected",
    [
        ("HTTPS://GitHub.COM/Example/Repo.GIT", "https://github.com/example/repo"),
        # Only one ".git" and one "/" are trimmed, in that order.
        ("https://github.com/example/repo.git.git", "https://github.com/example/repo.git"),
        ("https://github.com/example/repo//", "https://github.com/example/repo/"),
        ("https://github.com/example/repo/.git", "https://github.com/example/repo/"),
        ("https://token@github.com/example/repo", "https://github.com/example/repo"),
        ("https://localhost:notaport/x", "https://localhost:notaport/x"),  # unparseable: as is
        # Everything that isn't http(s) is returned untouched (current Kargo).
        ("file:///tmp/Repo.git/", "file:///tmp/Repo.git/"),
        ("/srv/git/Repo", "/srv/git/Repo"),
        ("ssh://git@github.com/example/repo.git", "ssh://git@github.com/example/repo.git"),
        ("git@github.com:example/repo.git", "git@github.com:example/repo.git"),
    ],
)
def test_normalize_git_url_more_cases(given, expected):
    assert normalize_git_url(given) == expected


# pkg/urls/helm_test.go
KARGO_CHART_CASES = {
    "": "",
    "repo": "repo",
    "  repo  ": "repo",
    "REpo": "repo",
    "oci://repo": "repo",
    "  oci://repo  ": "repo",
    "OCI://Repo": "repo",
    "oci://docker.io/example/repo": "example/repo",
    "docker.io/example/repo": "example/repo",
    "oci://index.docker.io/example/repo": "example/repo",
    "index.docker.io/example/repo": "example/repo",
    "oci://registry-1.docker.io/example/repo": "example/repo",
    "registry-1.docker.io/example/repo": "example/repo",
}


@pytest.mark.parametrize("given,expected", KARGO_CHART_CASES.items())
def test_normalize_chart_url_kargo_cases(given, expected):
    assert normalize_chart_url(given) == expected


@pytest.mark.parametrize(
    "given,expected",
    [
        ("oci://GHCR.io/Example/Charts", "ghcr.io/example/charts"),
        ("oci://localhost:5000/charts/app", "localhost:5000/charts/app"),
        ("oci://docker.io/library/redis", "redis"),
        # Classic repositories are only lowercased (no trailing-slash trimming).
        ("https://Charts.Example.com/stable/", "https://charts.example.com/stable/"),
        ("\ufeffhttps://charts.example.com", "https://charts.example.com"),
    ],
)
def test_normalize_chart_url_more_cases(given, expected):
    assert normalize_chart_url(given) == expected
