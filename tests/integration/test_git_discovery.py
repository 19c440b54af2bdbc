"""Git discovery against real repositories built in tmp_path (freight/discovery.py)."""

import hashlib
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import freight.discovery.git as discovery
from freight.discovery.git import DiscoveredCommit, DiscoveryError, discover_git, parse_semver
from kargo.freight_ids import normalize_git_url

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
AUTHOR = "Alice Author <alice@example.com>"
COMMITTER = "Carol Committer <carol@example.com>"


class Repo:
    """A throwaway git repository with a fixed identity and controllable dates."""

    def __init__(self, path: Path):
        self.path = path
        self.clock = T0
        path.mkdir()
        self.git("init", "--quiet", "--initial-branch=main")

    @property
    def url(self) -> str:
        return self.path.as_uri()  # file:///...

    def env(self, when: datetime) -> dict[str, str]:
        stamp = when.isoformat()
        return {
            **os.environ,
            # The machine may have no git identity, and a user's config (signing,
            # hooks) must not leak into the fixtures.
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Alice Author",
            "GIT_AUTHOR_EMAIL": "alice@example.com",
            "GIT_COMMITTER_NAME": "Carol Committer",
            "GIT_COMMITTER_EMAIL": "carol@example.com",
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_DATE": stamp,
        }

    def git(self, *args: str, when: datetime | None = None) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=self.env(when or self.clock),
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip()

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        """Commit `files` (path -> content) one hour after the previous commit."""
        self.clock += timedelta(hours=1)
        for name, content in (files or {f"{message}.txt": message}).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", name)
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, annotated: bool = False, when: datetime | None = None) -> None:
        if annotated:
            self.git("tag", "-a", name, "-m", f"release {name}", when=when)
        else:
            self.git("tag", name)


@pytest.fixture
def repo(tmp_path):
    return Repo(tmp_path / "origin")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def ids(commits: list[DiscoveredCommit]) -> list[str]:
    return [c.id for c in commits]


def tags(commits: list[DiscoveredCommit]) -> list[str]:
    return [c.tag for c in commits]


@pytest.fixture
def tagged(repo):
    """main: c1 (v1.0.0) - c2 (v1.1.0) - c3 (v2.0.0-rc.1) - c4 (not-a-version)."""
    shas = {}
    for message, tag in [
        ("c1", "v1.0.0"),
        ("c2", "v1.1.0"),
        ("c3", "v2.0.0-rc.1"),
        ("c4", "not-a-version"),
    ]:
        shas[tag] = repo.commit(message)
        repo.tag(tag)
    return shas


# --------------------------------------------------------------------------
# NewestFromBranch
# --------------------------------------------------------------------------


def test_newest_from_default_branch(repo, cache):
    c1 = repo.commit("first")
    c2 = repo.commit("second")
    c3 = repo.commit("third")

    found = discover_git({"repoURL": repo.url}, cache)

    assert ids(found) == [c3, c2, c1]
    newest = found[0]
    assert newest.subject == "third"
    assert newest.author == AUTHOR
    assert newest.committer == COMMITTER
    assert newest.creator_date == T0 + timedelta(hours=3)
    assert newest.creator_date.tzinfo is not None
    # Like Kargo, the branch is reported as subscribed: empty for the default.
    assert newest.branch == ""
    assert newest.as_dict() == {
        "id": c3,
        "subject": "third",
        "author": AUTHOR,
        "committer": COMMITTER,
        "creatorDate": "2024-01-01T15:00:00Z",
    }


def test_named_branch_and_plain_path(repo, cache):
    base = repo.commit("base")
    repo.git("checkout", "--quiet", "-b", "feature")
    feature = repo.commit("feature work")
    repo.git("checkout", "--quiet", "main")
    main = repo.commit("main work")

    found = discover_git({"repoURL": str(repo.path), "branch": "feature"}, cache)
    assert ids(found) == [feature, base]
    assert {c.branch for c in found} == {"feature"}

    # The default branch is whatever the remote's HEAD points at.
    assert ids(discover_git({"repoURL": str(repo.path)}, cache)) == [main, base]
    repo.git("symbolic-ref", "HEAD", "refs/heads/feature")
    assert ids(discover_git({"repoURL": str(repo.path)}, cache)) == [feature, base]


def test_missing_branch(repo, cache):
    repo.commit("only")
    with pytest.raises(DiscoveryError, match="branch 'nope' not found in file://"):
        discover_git({"repoURL": repo.url, "branch": "nope"}, cache)


def test_discovery_limit(repo, cache):
    shas = [repo.commit(f"c{i}") for i in range(25)]
    assert ids(discover_git({"repoURL": repo.url, "discoveryLimit": 2}, cache)) == shas[:-3:-1]
    # The default limit is 20.
    assert len(discover_git({"repoURL": repo.url}, cache)) == 20
    with pytest.raises(DiscoveryError, match="discoveryLimit"):
        discover_git({"repoURL": repo.url, "discoveryLimit": 101}, cache)


def test_second_call_fetches_new_commits_into_one_mirror(repo, cache):
    first = repo.commit("first")
    assert ids(discover_git({"repoURL": repo.url}, cache)) == [first]

    second = repo.commit("second")
    repo.tag("v1.0.0")
    assert ids(discover_git({"repoURL": repo.url}, cache)) == [second, first]
    assert tags(
        discover_git({"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}, cache)
    ) == ["v1.0.0"]

    # Tags deleted upstream disappear too (fetch --prune).
    repo.git("tag", "-d", "v1.0.0")
    assert discover_git({"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}, cache) == []

    # One mirror, named after the sha1 of the normalised URL, not the URL itself.
    key = hashlib.sha1(normalize_git_url(repo.url).encode()).hexdigest()
    mirrors = [p.name for p in cache.iterdir() if p.is_dir()]
    assert mirrors == [key]
    assert (
        subprocess.run(
            ["git", "-C", str(cache / key), "rev-parse", "--is-bare-repository"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        == "true"
    )


def test_force_pushed_history_is_followed(repo, cache):
    repo.commit("first")
    doomed = repo.commit("doomed")
    assert discover_git({"repoURL": repo.url}, cache)[0].id == doomed
    repo.git("reset", "--quiet", "--hard", "HEAD~1")
    replacement = repo.commit("replacement")
    assert discover_git({"repoURL": repo.url}, cache)[0].id == replacement


def test_since_cutoff(repo, cache):
    repo.commit("old")  # T0+1h
    middle = repo.commit("middle")  # T0+2h
    new = repo.commit("new")  # T0+3h
    since = (T0 + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert ids(discover_git({"repoURL": repo.url, "since": since}, cache)) == [new, middle]
    with pytest.raises(DiscoveryError, match="since"):
        discover_git({"repoURL": repo.url, "since": "yesterday"}, cache)


def test_long_subjects_are_shortened(repo, cache):
    repo.commit("x" * 100)
    subject = discover_git({"repoURL": repo.url}, cache)[0].subject
    assert subject == "x" * 77 + "..."


# --------------------------------------------------------------------------
# Path filters
# --------------------------------------------------------------------------


@pytest.fixture
def layout(repo):
    """Commits touching different parts of the tree, oldest first."""
    return {
        "app": repo.commit("app", {"apps/web/main.go": "1"}),
        "chart": repo.commit("chart", {"charts/web/values.yaml": "1"}),
        "docs": repo.commit("docs", {"docs/readme.md": "1"}),
        "both": repo.commit("both", {"charts/web/values.yaml": "2", "docs/readme.md": "2"}),
        "lookalike": repo.commit("lookalike", {"charts-old/x.yaml": "1"}),
    }


@pytest.mark.parametrize(
    "include,exclude,expected",
    [
        # Plain selectors are a path or a directory prefix (by whole component).
        (["charts"], [], ["both", "chart"]),
        (["charts/web/values.yaml"], [], ["both", "chart"]),
        (["glob:**/*.yaml"], [], ["lookalike", "both", "chart"]),
        (["glob:charts/*"], [], []),  # "*" does not cross "/"
        (["glob:charts/**"], [], ["both", "chart"]),
        (["glob:{apps,docs}/**"], [], ["both", "docs", "app"]),
        (["regex:^docs/"], [], ["both", "docs"]),
        (["regexp:main\\.go$"], [], ["app"]),
        # A commit qualifies if at least one changed path is included and not excluded.
        ([], ["docs"], ["lookalike", "both", "chart", "app"]),
        (["charts", "docs"], ["docs"], ["both", "chart"]),
        (["docs"], ["glob:**/*.md"], []),
    ],
)
def test_path_filters(repo, cache, layout, include, exclude, expected):
    sub = {"repoURL": repo.url, "includePaths": include, "excludePaths": exclude}
    assert ids(discover_git(sub, cache)) == [layout[name] for name in expected]


def test_path_filters_respect_the_limit_across_batches(repo, cache):
    wanted = [repo.commit(f"w{i}", {"deploy/app.yaml": str(i)}) for i in range(3)]
    for i in range(30):
        repo.commit(f"noise{i}", {"noise.txt": str(i)})
    sub = {"repoURL": repo.url, "includePaths": ["deploy"], "discoveryLimit": 2}
    assert ids(discover_git(sub, cache)) == wanted[:0:-1]


def test_invalid_path_selector(repo, cache):
    repo.commit("one")
    with pytest.raises(DiscoveryError, match="includePaths"):
        discover_git({"repoURL": repo.url, "includePaths": ["regex:("]}, cache)


# --------------------------------------------------------------------------
# Tag strategies
# --------------------------------------------------------------------------


def test_semver_strict_default(repo, cache, tagged):
    found = discover_git({"repoURL": repo.url, "commitSelectionStrategy": "SemVer"}, cache)
    # Without a constraint every (strict) semver tag counts, pre-releases too.
    assert tags(found) == ["v2.0.0-rc.1", "v1.1.0", "v1.0.0"]
    assert found[0].id == tagged["v2.0.0-rc.1"]
    assert found[0].branch == ""
    assert found[0].subject == "c3"
    assert found[0].as_dict()["tag"] == "v2.0.0-rc.1"


def test_semver_loose_versions_need_strict_off(repo, cache, tagged):
    repo.tag("v1.2", annotated=False)  # on c4, not a full X.Y.Z
    repo.tag("1.0.0")  # no "v": equal to v1.0.0 as a version
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer"}
    assert tags(discover_git(sub, cache)) == ["v2.0.0-rc.1", "v1.1.0", "v1.0.0", "1.0.0"]
    sub["strictSemvers"] = False
    # Equal versions are ordered reverse-lexically by the original tag.
    assert tags(discover_git(sub, cache)) == ["v2.0.0-rc.1", "v1.2", "v1.1.0", "v1.0.0", "1.0.0"]


@pytest.mark.parametrize(
    "constraint,expected",
    [
        ("^1.0.0", ["v1.1.0", "v1.0.0"]),
        ("~1.0", ["v1.0.0"]),
        (">=1.0.0, <1.1.0", ["v1.0.0"]),  # Masterminds comma AND
        (">= 1.0.0 < 1.1.0", ["v1.0.0"]),  # space AND, space after operator
        ("=>1.1.0", ["v1.1.0"]),  # Masterminds alias
        ("!=1.1.0", ["v1.0.0"]),
        ("1.0.0 - 1.1.0", ["v1.1.0", "v1.0.0"]),
        ("1.x", ["v1.1.0", "v1.0.0"]),
        ("<1.1.0 || >=2.0.0-rc.0", ["v2.0.0-rc.1", "v1.0.0"]),
        # Pre-releases only match groups that mention a pre-release.
        (">=1.0.0", ["v1.1.0", "v1.0.0"]),
        (">=2.0.0-0", ["v2.0.0-rc.1"]),
        (">=1.5.0-0, <3", ["v2.0.0-rc.1"]),
        (">3", []),
        ("~0.0.0", ["v1.1.0", "v1.0.0"]),  # Masterminds: any release >= 0.0.0
        ("*", ["v1.1.0", "v1.0.0"]),
    ],
)
def test_semver_constraints(repo, cache, tagged, constraint, expected):
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer", "semverConstraint": constraint}
    assert tags(discover_git(sub, cache)) == expected


@pytest.mark.parametrize("constraint", ["not a range", ">=1.0.0 ||", "^1.0.0 && <2"])
def test_invalid_semver_constraint(tmp_path, cache, constraint):
    # Checked before any network access, so even a missing repository reports it.
    url = (tmp_path / "missing").as_uri()
    sub = {"repoURL": url, "commitSelectionStrategy": "SemVer", "semverConstraint": constraint}
    with pytest.raises(DiscoveryError, match="semverConstraint"):
        discover_git(sub, cache)


def test_lexical(repo, cache, tagged):
    found = discover_git({"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}, cache)
    assert tags(found) == ["v2.0.0-rc.1", "v1.1.0", "v1.0.0", "not-a-version"]
    assert found[-1].id == tagged["not-a-version"]


def test_newest_tag_uses_creator_dates(repo, cache):
    first = repo.commit("first")
    repo.commit("second")
    # Lightweight tags take the commit's date; annotated tags their own date.
    repo.tag("zzz-light")  # on "second": T0+2h
    repo.git("tag", "aaa-old", first)  # T0+1h
    repo.git("tag", "-a", "mmm-annotated", "-m", "late", first, when=T0 + timedelta(days=1))
    found = discover_git({"repoURL": repo.url, "commitSelectionStrategy": "NewestTag"}, cache)
    assert tags(found) == ["mmm-annotated", "zzz-light", "aaa-old"]
    # The annotated tag is peeled to its commit; its creatorDate is the tag's.
    assert found[0].id == first
    assert found[0].subject == "first"
    assert found[0].creator_date == T0 + timedelta(days=1)


def test_allow_and_ignore_tag_regexes(repo, cache, tagged):
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "Lexical", "allowTagsRegexes": ["^v1"]}
    assert tags(discover_git(sub, cache)) == ["v1.1.0", "v1.0.0"]
    # Ignore rules win over allow rules.
    sub["ignoreTagsRegexes"] = ["1\\.1"]
    assert tags(discover_git(sub, cache)) == ["v1.0.0"]
    # Unanchored search, like Go's MatchString.
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer", "ignoreTagsRegexes": ["rc"]}
    assert tags(discover_git(sub, cache)) == ["v1.1.0", "v1.0.0"]


def test_deprecated_allow_and_ignore_tags(repo, cache, tagged):
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "Lexical", "allowTags": "^v"}
    assert tags(discover_git(sub, cache)) == ["v2.0.0-rc.1", "v1.1.0", "v1.0.0"]
    # ignoreTags are exact names, not patterns.
    sub["ignoreTags"] = ["v1.1.0", "v1"]
    assert tags(discover_git(sub, cache)) == ["v2.0.0-rc.1", "v1.0.0"]


def test_tag_limit_and_path_filters(repo, cache):
    repo.commit("chart-1", {"charts/a.yaml": "1"})
    repo.tag("v1.0.0")
    repo.commit("docs", {"docs/a.md": "1"})
    repo.tag("v1.1.0")
    repo.commit("chart-2", {"charts/a.yaml": "2"})
    repo.tag("v1.2.0")
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer", "includePaths": ["charts"]}
    assert tags(discover_git(sub, cache)) == ["v1.2.0", "v1.0.0"]
    sub["discoveryLimit"] = 1
    assert tags(discover_git(sub, cache)) == ["v1.2.0"]
    assert tags(discover_git({**sub, "includePaths": []}, cache)) == ["v1.2.0"]


def test_expression_filter_hook(repo, cache, tagged):
    seen = []

    def only_minor_one(env):
        seen.append(env)
        return env["tag"] != "v1.1.0"

    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer"}
    found = discover_git(sub, cache, expression_filter=only_minor_one)
    assert tags(found) == ["v2.0.0-rc.1", "v1.0.0"]
    assert set(seen[0]) == {
        "tag",
        "id",
        "creatorDate",
        "author",
        "committer",
        "subject",
        "tagger",
        "annotation",
    }

    # For branches the environment is Kargo's commit environment, and the
    # filter runs before the limit.
    sub = {"repoURL": repo.url, "discoveryLimit": 1}
    found = discover_git(sub, cache, expression_filter=lambda env: env["subject"] == "c2")
    assert ids(found) == [tagged["v1.1.0"]]

    def broken(env):
        raise ValueError("boom")

    with pytest.raises(DiscoveryError, match="boom"):
        discover_git(sub, cache, expression_filter=broken)


# --------------------------------------------------------------------------
# Failures and safety
# --------------------------------------------------------------------------


def test_missing_repository(tmp_path, cache):
    url = (tmp_path / "does-not-exist").as_uri()
    with pytest.raises(DiscoveryError) as info:
        discover_git({"repoURL": url}, cache)
    message = str(info.value)
    assert url in message
    assert "fetch" in message or "default branch" in message
    # A URL that never worked leaves no mirror behind.
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_repo_url_is_never_given_to_a_shell(tmp_path, cache):
    marker = tmp_path / "pwned"
    url = f"file:///tmp/x; touch {marker}"
    for strategy in ("NewestFromBranch", "SemVer"):
        with pytest.raises(DiscoveryError) as info:
            discover_git({"repoURL": url, "commitSelectionStrategy": strategy}, cache)
        assert url in str(info.value)
    assert not marker.exists()


def test_option_like_urls_are_rejected(cache):
    with pytest.raises(DiscoveryError, match="must not start with '-'"):
        discover_git({"repoURL": "--upload-pack=touch /tmp/x"}, cache)


def test_credentials_are_masked_in_errors(cache):
    # Port 1 on localhost refuses connections immediately.
    url = "http://user:s3cr3t@127.0.0.1:1/example/repo.git"
    with pytest.raises(DiscoveryError) as info:
        discover_git({"repoURL": url}, cache)
    message = str(info.value)
    assert "s3cr3t" not in message
    assert "http://***@127.0.0.1:1/example/repo.git" in message


def test_timeouts_are_enforced(repo, cache, monkeypatch):
    repo.commit("one")
    monkeypatch.setattr(discovery, "NETWORK_TIMEOUT", 0.0001)
    with pytest.raises(DiscoveryError, match="timed out"):
        discover_git({"repoURL": repo.url, "branch": "main"}, cache)


def test_unknown_strategy(repo, cache):
    with pytest.raises(DiscoveryError, match="commitSelectionStrategy"):
        discover_git({"repoURL": repo.url, "commitSelectionStrategy": "Newest"}, cache)


def test_empty_repository_without_branch(repo, cache):
    with pytest.raises(DiscoveryError, match="default branch"):
        discover_git({"repoURL": repo.url}, cache)
    # Tag strategies simply find nothing.
    assert discover_git({"repoURL": repo.url, "commitSelectionStrategy": "NewestTag"}, cache) == []


# --------------------------------------------------------------------------
# Semantic version parsing (Kargo's pkg/controller/semver.Parse)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag,strict,expected",
    [
        ("v1.2.3", True, "1.2.3"),
        ("1.2.3", True, "1.2.3"),
        ("v1.2.3-rc.1+build.5", True, "1.2.3-rc.1+build.5"),
        ("v1.2", True, None),  # strict needs MAJOR.MINOR.PATCH
        ("v1.2", False, "1.2.0"),
        ("v1", False, "1.0.0"),
        ("v01.2.3", False, None),  # leading zeros
        ("1.2.3-01", True, None),  # numeric pre-release with a leading zero
        ("V1.2.3", False, None),  # only a lowercase "v" prefix
        ("not-a-version", False, None),
        ("release-1.2.3", False, None),
    ],
)
def test_parse_semver(tag, strict, expected):
    version = parse_semver(tag, strict=strict)
    assert (str(version) if version else None) == expected


def test_semver_ordering():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0",
    ]
    versions = [parse_semver(v, strict=True) for v in ordered]
    for lower, higher in zip(versions, versions[1:], strict=False):
        assert lower.compare(higher) == -1
        assert higher.compare(lower) == 1
    assert parse_semver("1.0.0+a", strict=True).compare(parse_semver("1.0.0+b", strict=True)) == 0
