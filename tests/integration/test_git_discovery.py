"""Git discovery against real repositories built in tmp_path (freight/discovery/), and the
behaviour of the libraries it relies on: python-semver, wcmatch and RE2."""

import hashlib
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from freight.discovery import DiscoveredCommit, DiscoveryError, discover_git, mirror
from freight.discovery.paths import paths_filter
from freight.discovery.tags import tag_name_filter
from kargo.freight_ids import normalize_git_url
from kargo.specs import GitSubscription
from kargo.versions import Constraint, parse_version

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


def subscription(fields: dict) -> GitSubscription:
    """The typed subscription a Warehouse spec holds, Kargo's defaults filled in."""
    return GitSubscription.model_validate(fields)


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

    found = discover_git(subscription({"repoURL": repo.url}), cache)

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


def test_named_branch_and_default_branch(repo, cache):
    base = repo.commit("base")
    repo.git("checkout", "--quiet", "-b", "feature")
    feature = repo.commit("feature work")
    repo.git("checkout", "--quiet", "main")
    main = repo.commit("main work")

    found = discover_git(subscription({"repoURL": repo.url, "branch": "feature"}), cache)
    assert ids(found) == [feature, base]
    assert {c.branch for c in found} == {"feature"}

    # The default branch is whatever the remote's HEAD points at.
    assert ids(discover_git(subscription({"repoURL": repo.url}), cache)) == [main, base]
    repo.git("symbolic-ref", "HEAD", "refs/heads/feature")
    assert ids(discover_git(subscription({"repoURL": repo.url}), cache)) == [feature, base]


def test_the_typed_subscription_checks_urls_branches_limits_and_dates():
    # What discovery no longer checks itself: a subscription that validates is well-formed.
    for fields in (
        {"repoURL": "/srv/git/app"},  # a plain path is not a git URL; file:/// is
        {"repoURL": "--upload-pack=touch /tmp/x"},
        {"repoURL": "file:///srv/git/app", "branch": "-x"},
        {"repoURL": "file:///srv/git/app", "branch": "a" * 256},
        {"repoURL": "file:///srv/git/app", "discoveryLimit": 101},
        {"repoURL": "file:///srv/git/app", "since": "yesterday"},
        {"repoURL": "file:///srv/git/app", "commitSelectionStrategy": "Newest"},
    ):
        with pytest.raises(ValidationError):
            subscription(fields)
    defaults = subscription({"repoURL": "file:///srv/git/app"})
    assert (defaults.commitSelectionStrategy, defaults.discoveryLimit, defaults.strictSemvers) == (
        "NewestFromBranch",
        20,
        True,
    )


def test_missing_branch(repo, cache):
    repo.commit("only")
    with pytest.raises(DiscoveryError, match="branch 'nope' not found in file://"):
        discover_git(subscription({"repoURL": repo.url, "branch": "nope"}), cache)


def test_discovery_limit(repo, cache):
    shas = [repo.commit(f"c{i}") for i in range(25)]
    assert (
        ids(discover_git(subscription({"repoURL": repo.url, "discoveryLimit": 2}), cache))
        == shas[:-3:-1]
    )
    # The default limit is 20.
    assert len(discover_git(subscription({"repoURL": repo.url}), cache)) == 20


def test_second_call_fetches_new_commits_into_one_mirror(repo, cache):
    first = repo.commit("first")
    assert ids(discover_git(subscription({"repoURL": repo.url}), cache)) == [first]

    second = repo.commit("second")
    repo.tag("v1.0.0")
    assert ids(discover_git(subscription({"repoURL": repo.url}), cache)) == [second, first]
    assert tags(
        discover_git(
            subscription({"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}), cache
        )
    ) == ["v1.0.0"]

    # Tags deleted upstream disappear too (fetch --prune).
    repo.git("tag", "-d", "v1.0.0")
    assert (
        discover_git(
            subscription({"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}), cache
        )
        == []
    )

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
    assert discover_git(subscription({"repoURL": repo.url}), cache)[0].id == doomed
    repo.git("reset", "--quiet", "--hard", "HEAD~1")
    replacement = repo.commit("replacement")
    assert discover_git(subscription({"repoURL": repo.url}), cache)[0].id == replacement


def test_since_cutoff(repo, cache):
    repo.commit("old")  # T0+1h
    middle = repo.commit("middle")  # T0+2h
    new = repo.commit("new")  # T0+3h
    for since in ("2024-01-01T14:00:00Z", "2024-01-01T15:00:00+01:00"):  # both T0+2h
        found = discover_git(subscription({"repoURL": repo.url, "since": since}), cache)
        assert ids(found) == [new, middle]


def test_long_subjects_are_shortened(repo, cache):
    repo.commit("x" * 100)
    subject = discover_git(subscription({"repoURL": repo.url}), cache)[0].subject
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
    assert ids(discover_git(subscription(sub), cache)) == [layout[name] for name in expected]


def test_path_filters_respect_the_limit_across_batches(repo, cache):
    wanted = [repo.commit(f"w{i}", {"deploy/app.yaml": str(i)}) for i in range(3)]
    for i in range(30):
        repo.commit(f"noise{i}", {"noise.txt": str(i)})
    sub = {"repoURL": repo.url, "includePaths": ["deploy"], "discoveryLimit": 2}
    assert ids(discover_git(subscription(sub), cache)) == wanted[:0:-1]


def test_invalid_path_selector(repo, cache):
    repo.commit("one")
    with pytest.raises(DiscoveryError, match="includePaths"):
        discover_git(subscription({"repoURL": repo.url, "includePaths": ["regex:("]}), cache)


# --------------------------------------------------------------------------
# Tag strategies
# --------------------------------------------------------------------------


def test_semver_strict_default(repo, cache, tagged):
    found = discover_git(
        subscription({"repoURL": repo.url, "commitSelectionStrategy": "SemVer"}), cache
    )
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
    assert tags(discover_git(subscription(sub), cache)) == [
        "v2.0.0-rc.1",
        "v1.1.0",
        "v1.0.0",
        "1.0.0",
    ]
    sub["strictSemvers"] = False
    # Equal versions are ordered reverse-lexically by the original tag.
    assert tags(discover_git(subscription(sub), cache)) == [
        "v2.0.0-rc.1",
        "v1.2",
        "v1.1.0",
        "v1.0.0",
        "1.0.0",
    ]


@pytest.mark.parametrize(
    "constraint,expected",
    [
        ("^1.0.0", ["v1.1.0", "v1.0.0"]),
        ("~1.0", ["v1.0.0"]),
        (">=1.0.0, <1.1.0", ["v1.0.0"]),  # Masterminds comma AND
        (">= 1.0.0 < 1.1.0", ["v1.0.0"]),  # space AND, space after operator
        ("=>1.1.0", ["v1.1.0"]),  # Masterminds alias
        ("!=1.1.0", ["v1.0.0"]),
        ("<3, !=1.0.0", ["v1.1.0"]),
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
    assert tags(discover_git(subscription(sub), cache)) == expected


@pytest.mark.parametrize("constraint", ["not a range", ">=1.0.0 ||", "^1.0.0 && <2"])
def test_invalid_semver_constraint(tmp_path, cache, constraint):
    # Refused when the subscription is read (at apply, with its field path), before discovery.
    url = (tmp_path / "missing").as_uri()
    sub = {"repoURL": url, "commitSelectionStrategy": "SemVer", "semverConstraint": constraint}
    with pytest.raises(ValidationError, match="semverConstraint"):
        subscription(sub)


def test_lexical(repo, cache, tagged):
    found = discover_git(
        subscription({"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}), cache
    )
    assert tags(found) == ["v2.0.0-rc.1", "v1.1.0", "v1.0.0", "not-a-version"]
    assert found[-1].id == tagged["not-a-version"]


def test_newest_tag_uses_creator_dates(repo, cache):
    first = repo.commit("first")
    repo.commit("second")
    # Lightweight tags take the commit's date; annotated tags their own date.
    repo.tag("zzz-light")  # on "second": T0+2h
    repo.git("tag", "aaa-old", first)  # T0+1h
    repo.git("tag", "-a", "mmm-annotated", "-m", "late", first, when=T0 + timedelta(days=1))
    found = discover_git(
        subscription({"repoURL": repo.url, "commitSelectionStrategy": "NewestTag"}), cache
    )
    assert tags(found) == ["mmm-annotated", "zzz-light", "aaa-old"]
    # The annotated tag is peeled to its commit; its creatorDate is the tag's.
    assert found[0].id == first
    assert found[0].subject == "first"
    assert found[0].creator_date == T0 + timedelta(days=1)


def test_allow_and_ignore_tag_regexes(repo, cache, tagged):
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "Lexical", "allowTagsRegexes": ["^v1"]}
    assert tags(discover_git(subscription(sub), cache)) == ["v1.1.0", "v1.0.0"]
    # Ignore rules win over allow rules.
    sub["ignoreTagsRegexes"] = ["1\\.1"]
    assert tags(discover_git(subscription(sub), cache)) == ["v1.0.0"]
    # Unanchored search, like Go's MatchString.
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer", "ignoreTagsRegexes": ["rc"]}
    assert tags(discover_git(subscription(sub), cache)) == ["v1.1.0", "v1.0.0"]


def test_deprecated_allow_and_ignore_tags(repo, cache, tagged):
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "Lexical", "allowTags": "^v"}
    assert tags(discover_git(subscription(sub), cache)) == ["v2.0.0-rc.1", "v1.1.0", "v1.0.0"]
    # ignoreTags are exact names, not patterns.
    sub["ignoreTags"] = ["v1.1.0", "v1"]
    assert tags(discover_git(subscription(sub), cache)) == ["v2.0.0-rc.1", "v1.0.0"]


def test_tag_limit_and_path_filters(repo, cache):
    repo.commit("chart-1", {"charts/a.yaml": "1"})
    repo.tag("v1.0.0")
    repo.commit("docs", {"docs/a.md": "1"})
    repo.tag("v1.1.0")
    repo.commit("chart-2", {"charts/a.yaml": "2"})
    repo.tag("v1.2.0")
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer", "includePaths": ["charts"]}
    assert tags(discover_git(subscription(sub), cache)) == ["v1.2.0", "v1.0.0"]
    sub["discoveryLimit"] = 1
    assert tags(discover_git(subscription(sub), cache)) == ["v1.2.0"]
    assert tags(discover_git(subscription({**sub, "includePaths": []}), cache)) == ["v1.2.0"]


def test_expression_filter_hook(repo, cache, tagged):
    seen = []

    def only_minor_one(env):
        seen.append(env)
        return env["tag"] != "v1.1.0"

    sub = {"repoURL": repo.url, "commitSelectionStrategy": "SemVer"}
    found = discover_git(subscription(sub), cache, expression_filter=only_minor_one)
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
    found = discover_git(
        subscription(sub), cache, expression_filter=lambda env: env["subject"] == "c2"
    )
    assert ids(found) == [tagged["v1.1.0"]]

    def broken(env):
        raise ValueError("boom")

    with pytest.raises(DiscoveryError, match="boom"):
        discover_git(subscription(sub), cache, expression_filter=broken)


# --------------------------------------------------------------------------
# Failures and safety
# --------------------------------------------------------------------------


def test_missing_repository(tmp_path, cache):
    url = (tmp_path / "does-not-exist").as_uri()
    with pytest.raises(DiscoveryError) as info:
        discover_git(subscription({"repoURL": url}), cache)
    message = str(info.value)
    assert url in message
    assert "fetch" in message or "default branch" in message
    # A URL that never worked leaves no mirror behind.
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_repo_url_is_never_given_to_a_shell(tmp_path, cache):
    marker = tmp_path / "pwned"
    url = f"file:///tmp/x;touch${{IFS}}{marker}"
    for strategy in ("NewestFromBranch", "SemVer"):
        with pytest.raises(DiscoveryError) as info:
            discover_git(subscription({"repoURL": url, "commitSelectionStrategy": strategy}), cache)
        assert url in str(info.value)
    assert not marker.exists()


def test_option_like_urls_are_rejected(cache):
    # Kargo's scp-style pattern lets this one through; discovery refuses it.
    with pytest.raises(DiscoveryError, match="must not start with '-'"):
        discover_git(subscription({"repoURL": "-oProxy@host:path"}), cache)


def test_credentials_are_masked_in_errors(cache):
    # Port 1 on localhost refuses connections immediately.
    url = "http://user:s3cr3t@127.0.0.1:1/example/repo.git"
    with pytest.raises(DiscoveryError) as info:
        discover_git(subscription({"repoURL": url}), cache)
    message = str(info.value)
    assert "s3cr3t" not in message
    assert "http://***@127.0.0.1:1/example/repo.git" in message


def test_timeouts_are_enforced(repo, cache, monkeypatch):
    repo.commit("one")
    monkeypatch.setattr(mirror, "NETWORK_TIMEOUT", 0.0001)
    with pytest.raises(DiscoveryError, match="timed out"):
        discover_git(subscription({"repoURL": repo.url, "branch": "main"}), cache)


def test_empty_repository_without_branch(repo, cache):
    with pytest.raises(DiscoveryError, match="default branch"):
        discover_git(subscription({"repoURL": repo.url}), cache)
    # Tag strategies simply find nothing.
    newest_tag = subscription({"repoURL": repo.url, "commitSelectionStrategy": "NewestTag"})
    assert discover_git(newest_tag, cache) == []


def test_runaway_patterns_do_not_stall_discovery(repo, cache):
    # With a backtracking engine `^(a+)+$` against "aaa...ab" takes longer than the universe has
    # left; RE2 answers in linear time.
    repo.commit("one", {"a" * 200 + "b": "1"})
    repo.tag("a" * 200 + "b")
    repo.tag("aaa")
    sub = {"repoURL": repo.url, "commitSelectionStrategy": "Lexical"}
    assert tags(discover_git(subscription({**sub, "allowTagsRegexes": ["^(a+)+$"]}), cache)) == [
        "aaa"
    ]
    assert tags(discover_git(subscription({**sub, "allowTags": "^(a+)+$"}), cache)) == ["aaa"]
    assert tags(discover_git(subscription({**sub, "ignoreTagsRegexes": ["^(a+)+$"]}), cache)) == [
        "a" * 200 + "b"
    ]
    assert discover_git(subscription({**sub, "includePaths": ["regex:^(a+)+$"]}), cache) == []


# --------------------------------------------------------------------------
# Semantic versions: python-semver with Kargo's pkg/controller/semver.Parse rules
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag,strict,expected",
    [
        ("v1.2.3", True, "1.2.3"),
        ("1.2.3", True, "1.2.3"),
        ("v1.2.3-rc.1+build.5", True, "1.2.3-rc.1+build.5"),
        ("v1.2", True, None),  # strict needs MAJOR.MINOR.PATCH
        ("v01.2.3", True, None),  # strict: no leading zeros
        ("1.2.3-01", True, None),  # numeric pre-release with a leading zero
        # Loose is Masterminds' NewVersion (v3.5, Kargo's): minor and patch may be missing...
        ("v1.2", False, "1.2.0"),
        ("v1", False, "1.0.0"),
        ("1-rc.1", False, "1.0.0-rc.1"),
        ("v1.2+build", False, "1.2.0+build"),
        # ... and leading zeros in them are coerced away.
        ("v01.2.3", False, "1.2.3"),
        ("1.02", False, "1.2.0"),
        ("1.2.3-01", False, None),  # not in a pre-release, though
        ("V1.2.3", False, None),  # only a lowercase "v" prefix
        ("vv1.2.3", False, None),
        ("1.2.3.4", False, None),
        ("1.2.3-rc..1", False, None),
        ("1.2.3+", False, None),
        ("18446744073709551616.0.0", False, None),  # more than a uint64
        ("١.٢.٣", False, None),  # only ASCII digits
        ("not-a-version", False, None),
        ("release-1.2.3", False, None),
    ],
)
def test_parse_version(tag, strict, expected):
    version = parse_version(tag, strict=strict)
    assert (str(version) if version else None) == expected


def test_version_precedence():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
    ]
    versions = [parse_version(v, strict=True) for v in ordered]
    for lower, higher in zip(versions, versions[1:], strict=False):
        assert lower < higher
        assert higher > lower
    # Build metadata does not count, so the tag name breaks the tie (see the SemVer strategy).
    assert parse_version("1.0.0+a", strict=True) == parse_version("1.0.0+b", strict=True)
    assert parse_version("v1.0", strict=False) == parse_version("1.0.0", strict=True)


def test_hostile_constraints_are_answered_quickly():
    with pytest.raises(ValueError, match="semverConstraint"):
        Constraint("1" + " " * 3000 + "!")  # ambiguous whitespace: RE2, not backtracking
    # Each "!=" is its own range, not distributed into 2**40 alternatives.
    many_exclusions = Constraint(" ".join(f"!=1.0.{n}" for n in range(40)))
    assert many_exclusions.allows(parse_version("1.0.40", strict=True))
    assert not many_exclusions.allows(parse_version("1.0.7", strict=True))


def test_constraints_ignore_build_metadata():
    version = parse_version("1.2.3+build.7", strict=True)
    assert Constraint("=1.2.3").allows(version)
    assert Constraint(">=1.2.3, <1.3").allows(version)
    assert not Constraint(">1.2.3").allows(version)
    assert Constraint("").allows(version)


# --------------------------------------------------------------------------
# Path selectors: wcmatch with doublestar's rules, RE2 for regex:
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern,path,expected",
    [
        ("**/*.yaml", "x.yaml", True),  # "**/" may be no directory at all
        ("**/*.yaml", "a/b/x.yaml", True),
        ("*.yaml", "a/x.yaml", False),  # "*" never crosses "/"
        ("a?c", "a/c", False),
        ("charts/**", "charts/web/values.yaml", True),
        ("charts/**", "charts", True),  # doublestar: a trailing /** matches the directory too
        ("charts/**", "charts-old/x.yaml", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a**b", "axb", True),  # "**" inside a component is just "*"
        ("a**b", "ax/yb", False),
        ("{apps,docs}/**", "docs/readme.md", True),
        ("{apps,docs}/**", "charts/readme.md", False),
        ("*.md", ".hidden.md", True),  # dot files are not special
        ("**", ".github/workflows/ci.yaml", True),
        ("[!a]b", "cb", True),
        ("[^a]b", "ab", False),
        ("a\\*b", "a*b", True),  # an escaped "*" is literal
        ("a\\*b", "axb", False),
        ("*.YAML", "x.yaml", False),  # case matters
    ],
)
def test_doublestar_globs(pattern, path, expected):
    assert paths_filter([f"glob:{pattern}"], None).matches([path]) is expected


def test_globs_with_many_doublestars_stay_linear_on_deep_paths():
    # A backtracking glob matcher takes minutes on this pair; matching component by component
    # answers at once. The path is what a hostile repository can commit.
    deep = "/".join(["a"] * 2000) + "/c"
    assert not paths_filter(["glob:**/a/**/a/**/a/**/b"], None).matches([deep])
    assert paths_filter(["glob:**/a/**/a/**/a/**/c"], None).matches([deep])
    assert not paths_filter(["glob:*a*a*a*a*a*b"], None).matches(["a" * 100_000])


def test_too_many_brace_alternatives_are_refused():
    with pytest.raises(ValueError, match="includePaths"):
        paths_filter(["glob:" + "{a,b}" * 11], None)  # 2048 alternatives


def test_regex_selectors_are_re2():
    regex = paths_filter(["regex:^(a+)+$"], None)
    assert not regex.matches(["a" * 100_000 + "b"])
    # Go's syntax, not Python's: no backreferences or lookarounds.
    for pattern in ("regex:(a)\\1", "regexp:(?=a)"):
        with pytest.raises(ValueError, match="excludePaths"):
            paths_filter(None, [pattern])


def test_tag_name_filters_are_re2():
    sub = subscription({"repoURL": "file:///srv/git/app", "allowTagsRegexes": ["^(a+)+$"]})
    allowed = tag_name_filter(sub)
    assert not allowed("a" * 100_000 + "!")
    assert allowed("aaaa")
    with pytest.raises(ValueError, match="ignoreTagsRegexes"):
        tag_name_filter(
            subscription({"repoURL": "file:///srv/git/app", "ignoreTagsRegexes": ["(?<=v)1"]})
        )
