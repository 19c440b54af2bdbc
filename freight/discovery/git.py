"""Git artifact discovery for Warehouse git subscriptions, the way Kargo does it.

Kargo's selectors live in `pkg/controller/git/commit/` (newest_from_branch,
semver, lexical, newest_tag, tag_based and base selectors) on top of the git
CLI helpers in `pkg/controller/git/work_tree.go` (ListCommits, ListTags,
GetDiffPathsForCommitID). This module re-implements their behaviour with the
git CLI; only the facts are shared, not code.

Every git call goes through `_git()`: an argument list (never a shell), a
timeout, no terminal prompts, and error messages that name the repository and
quote the tail of git's stderr with any credentials in URLs masked.

A bare mirror per repository URL is kept under `cache_dir` and fetched on each
call, so repeated discovery is cheap and new commits show up on the next call.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nodesemver

from kargo import runner
from kargo.freight_ids import normalize_git_url
from kargo.redaction import redact

__all__ = ["DiscoveredCommit", "DiscoveryError", "discover_git"]

NEWEST_FROM_BRANCH = "NewestFromBranch"
SEMVER = "SemVer"
LEXICAL = "Lexical"
NEWEST_TAG = "NewestTag"
STRATEGIES = (NEWEST_FROM_BRANCH, SEMVER, LEXICAL, NEWEST_TAG)

DEFAULT_DISCOVERY_LIMIT = 20  # pkg/subscription/git.go ApplySubscriptionDefaults
MAX_DISCOVERY_LIMIT = 100  # schema maximum
SUBJECT_MAX_LENGTH = 80  # Kargo shortens subjects to 77 chars + "..."

# Network operations may legitimately take a while on a big repository; local
# ones (log, show, for-each-ref on the mirror) should not.
NETWORK_TIMEOUT = 300
LOCAL_TIMEOUT = 60

# Kargo's validation pattern for branch names (pkg/subscription/git.go). It also
# guarantees a branch can never be mistaken for a command-line option.
_BRANCH_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9_-])?$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Field and record separators for git's --format output: characters that cannot
# appear in names, e-mails or one-line subjects.
_FS = "\x1f"


class DiscoveryError(Exception):
    """Discovery failed. The message names the repository and what went wrong."""


@dataclass
class DiscoveredCommit:
    """Kargo's DiscoveredCommit (api/v1alpha1/warehouse_types.go)."""

    id: str
    branch: str = ""
    tag: str = ""
    subject: str = ""
    author: str = ""
    committer: str = ""
    creator_date: datetime | None = None  # aware, UTC

    def as_dict(self) -> dict:
        """Kargo's JSON shape; empty strings are omitted like Go's omitempty."""
        data = {
            "id": self.id,
            "branch": self.branch,
            "tag": self.tag,
            "subject": self.subject,
            "author": self.author,
            "committer": self.committer,
        }
        data = {key: value for key, value in data.items() if value}
        if self.creator_date is not None:
            # metav1.Time serialises as RFC 3339 in UTC with second precision.
            data["creatorDate"] = self.creator_date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return data


# An optional hook evaluating the subscription's expressionFilter. It receives
# Kargo's expression environment: for branch commits {id, commitDate, author,
# committer, subject}; for tags {tag, id, creatorDate, author, committer,
# subject, tagger, annotation}. Return True to keep the artifact.
ExpressionFilter = Callable[[dict], bool]


def discover_git(
    sub: dict,
    cache_dir: Path,
    *,
    expression_filter: ExpressionFilter | None = None,
) -> list[DiscoveredCommit]:
    """Discover commits for a Kargo git subscription (camelCase dict).

    Returns at most `discoveryLimit` commits, best first: index 0 is what a new
    Freight would use. `expressionFilter` in `sub` is not evaluated here; pass
    `expression_filter` to have it applied where Kargo applies it (before path
    filters and before the discovery limit), or filter the result afterwards.
    """
    repo_url = sub.get("repoURL")
    if not isinstance(repo_url, str) or not repo_url.strip():
        raise DiscoveryError("git subscription has no repoURL")
    shown_url = redact(repo_url)
    if repo_url.startswith("-"):
        # Would be read by git as an option, not a repository.
        raise DiscoveryError(f"invalid repoURL {shown_url!r}: must not start with '-'")

    strategy = sub.get("commitSelectionStrategy") or NEWEST_FROM_BRANCH
    if strategy not in STRATEGIES:
        raise DiscoveryError(
            f"unsupported commitSelectionStrategy {strategy!r} for {shown_url} "
            f"(expected one of {', '.join(STRATEGIES)})"
        )
    limit = sub.get("discoveryLimit") or DEFAULT_DISCOVERY_LIMIT
    if not isinstance(limit, int) or not 1 <= limit <= MAX_DISCOVERY_LIMIT:
        raise DiscoveryError(
            f"discoveryLimit for {shown_url} must be between 1 and {MAX_DISCOVERY_LIMIT}, got {limit!r}"
        )
    # Validate everything that can be wrong with the subscription itself before
    # touching the network, as Kargo does when it builds its selector.
    include = _compile_path_selectors(sub.get("includePaths"), "includePaths", shown_url)
    exclude = _compile_path_selectors(sub.get("excludePaths"), "excludePaths", shown_url)
    paths_filter = _PathsFilter(include, exclude) if (include or exclude) else None
    branch = sub.get("branch") or ""
    if branch and (not _BRANCH_RE.match(branch) or len(branch) > 255):
        raise DiscoveryError(f"invalid branch name {branch!r} for {shown_url}")
    since = _parse_since(sub.get("since"), shown_url)
    tag_filter = _tag_name_filter(sub, shown_url)
    constraint = _Constraint(sub.get("semverConstraint") or "", shown_url)

    mirror = _Mirror(repo_url, Path(cache_dir))
    with mirror.locked():
        mirror.sync(need_default_branch=strategy == NEWEST_FROM_BRANCH and not branch)
        if strategy == NEWEST_FROM_BRANCH:
            return _newest_from_branch(
                mirror, branch, since, limit, paths_filter, expression_filter
            )
        tag_rules = _TagRules(
            strategy=strategy,
            name_ok=tag_filter,
            strict=sub.get("strictSemvers", True) is not False,
            constraint=constraint,
        )
        return _from_tags(mirror, tag_rules, limit, paths_filter, expression_filter)


# --------------------------------------------------------------------------
# Running git
# --------------------------------------------------------------------------


def _git(
    args: list[str],
    *,
    url: str,
    what: str,
    cwd: Path | None = None,
    timeout: float = LOCAL_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run `git <args>` through the one runner; stdout and stderr as bytes."""
    shown = redact(url)
    try:
        result = runner.run(["git", *args], cwd=cwd, timeout=timeout, binary=True)
    except runner.CommandError as exc:
        raise DiscoveryError(f"cannot run git to {what} for {shown}: {exc}") from None
    if check and result.returncode != 0:
        detail = runner.tail(result.stderr, lines=6, chars=600) or "(no error output)"
        raise DiscoveryError(f"git failed to {what} for {shown}: {detail}")
    return result


# --------------------------------------------------------------------------
# The bare mirror
# --------------------------------------------------------------------------


class _Mirror:
    """A bare repository under cache_dir mirroring one remote's branches and tags."""

    def __init__(self, repo_url: str, cache_dir: Path):
        self.url = repo_url
        self.remote = self._remote_location(repo_url)
        # Named after the normalised URL's hash: spelling variants of one URL
        # share a mirror, and nothing from the raw URL reaches the filesystem.
        key = hashlib.sha1(normalize_git_url(repo_url).encode("utf-8")).hexdigest()
        self.cache_dir = cache_dir
        self.path = cache_dir / key
        self.lock_path = cache_dir / f"{key}.lock"
        self.default_branch = ""

    @staticmethod
    def _remote_location(repo_url: str) -> str:
        # A relative local path would be resolved against the mirror's
        # directory by git, so make plain paths absolute. URLs (scheme://) and
        # scp-style host:path locations are passed through untouched.
        if _SCHEME_RE.match(repo_url):
            return repo_url
        first = repo_url.split("/", 1)[0]
        if ":" in first:
            return repo_url
        return os.path.abspath(os.path.expanduser(repo_url))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise use of this mirror across threads and processes."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def git(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        return _git(args, url=self.url, cwd=self.path, **kwargs)

    def _is_valid(self) -> bool:
        if not self.path.is_dir():
            return False
        result = _git(
            ["rev-parse", "--is-bare-repository"],
            url=self.url,
            what="inspect the cached mirror",
            cwd=self.path,
            check=False,
        )
        return result.returncode == 0 and result.stdout.strip() == b"true"

    def _create(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)  # a broken leftover; rebuild it
        # Build in a temporary directory and rename, so a crash never leaves a
        # half-initialised mirror under the final name.
        tmp = Path(tempfile.mkdtemp(prefix=".mirror-", dir=self.cache_dir))
        try:
            _git(["init", "--bare", "--quiet", str(tmp)], url=self.url, what="create a mirror")
            for key, value in (
                ("remote.origin.url", self.remote),
                ("remote.origin.fetch", "+refs/heads/*:refs/heads/*"),
            ):
                _git(["config", key, value], url=self.url, what="configure the mirror", cwd=tmp)
            tmp.rename(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def sync(self, *, need_default_branch: bool) -> None:
        created = False
        if not self._is_valid():
            self._create()
            created = True
        try:
            # The subscription may spell the URL differently from when the
            # mirror was made (same normalised form); always fetch from this one.
            self.git(["config", "remote.origin.url", self.remote], what="configure the mirror")
            if need_default_branch:
                self.default_branch = self._remote_default_branch()
            # Branches are mirrored as refs/heads/*; --tags adds every tag;
            # --prune drops deleted branches and --prune-tags deleted tags (git
            # never prunes tags fetched by --tags alone), so the mirror matches
            # the fresh clone Kargo makes; --force accepts rewritten history
            # and moved tags.
            self.git(
                ["fetch", "--prune", "--prune-tags", "--tags", "--force", "--quiet", "origin"],
                what="fetch",
                timeout=NETWORK_TIMEOUT,
            )
        except DiscoveryError:
            if created:
                # Don't keep an empty mirror for a URL that never worked.
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def _remote_default_branch(self) -> str:
        """The branch the remote's HEAD points at (its default branch)."""
        result = self.git(
            ["ls-remote", "--symref", "origin", "HEAD"],
            what="look up the default branch",
            timeout=NETWORK_TIMEOUT,
        )
        for line in result.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("ref: ") and line.endswith("\tHEAD"):
                ref = line[len("ref: ") : -len("\tHEAD")]
                if ref.startswith("refs/heads/"):
                    return ref[len("refs/heads/") :]
        raise DiscoveryError(
            f"cannot determine the default branch of {redact(self.url)} "
            "(the repository may be empty); set 'branch' in the subscription"
        )


# --------------------------------------------------------------------------
# Path filters (includePaths / excludePaths)
# --------------------------------------------------------------------------


def _glob_to_regex(pattern: str) -> str:
    """Translate a doublestar glob into a regular expression.

    `*` and `?` never cross "/", `**` as a whole path component spans any number
    of directories (including none), `[...]` and `{a,b}` work as in
    bmatcuk/doublestar, which Kargo uses.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            whole_component = (
                j - i >= 2 and (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
            )
            if whole_component and j == n:
                if out and out[-1] == "/":
                    out.pop()
                    out.append("(?:/.*)?")  # "dir/**" also matches "dir" itself
                else:
                    out.append(".*")
                i = j
            elif whole_component:
                out.append("(?:[^/]*/)*")  # zero or more directories
                i = j + 1  # the "/" after ** is part of the group
            else:
                out.append("[^/]*")
                i = j
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "!^" else i + 1)
            if end == -1:
                raise ValueError(f"unterminated character class in {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
            i = end + 1
        elif ch == "{":
            depth, j = 0, i
            while j < n:
                if pattern[j] == "{":
                    depth += 1
                elif pattern[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise ValueError(f"unterminated '{{' in {pattern!r}")
            alternatives, depth, start = [], 0, i + 1
            for k in range(i + 1, j):
                if pattern[k] == "{":
                    depth += 1
                elif pattern[k] == "}":
                    depth -= 1
                elif pattern[k] == "," and depth == 0:
                    alternatives.append(pattern[start:k])
                    start = k + 1
            alternatives.append(pattern[start:j])
            out.append("(?:" + "|".join(_glob_to_regex(alt) for alt in alternatives) + ")")
            i = j + 1
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def _base_dir_matcher(base: str) -> Callable[[str], bool]:
    """A plain selector matches the path itself and anything below it."""

    def matches(path: str) -> bool:
        # Like Go's filepath.Rel, which Kargo uses: mixing absolute and
        # relative paths is "no match".
        if posixpath.isabs(base) != posixpath.isabs(path):
            return False
        rel = posixpath.relpath(path, base or ".")
        return rel != ".." and not rel.startswith("../")

    return matches


def _compile_path_selectors(selectors, field: str, shown_url: str) -> list[Callable[[str], bool]]:
    if not selectors:
        return []
    if isinstance(selectors, str) or not isinstance(selectors, list | tuple):
        raise DiscoveryError(f"{field} for {shown_url} must be a list of strings")
    matchers = []
    for selector in selectors:
        try:
            if selector.startswith("glob:"):
                regex = re.compile(_glob_to_regex(selector[len("glob:") :]))
                matchers.append(lambda p, r=regex: r.fullmatch(p) is not None)
            elif selector.startswith(("regex:", "regexp:")):
                regex = re.compile(selector.split(":", 1)[1])
                # Go's MatchString is an unanchored search.
                matchers.append(lambda p, r=regex: r.search(p) is not None)
            else:
                matchers.append(_base_dir_matcher(selector))
        except (re.error, ValueError) as exc:
            raise DiscoveryError(
                f"invalid {field} selector {selector!r} for {shown_url}: {exc}"
            ) from None
    return matchers


@dataclass
class _PathsFilter:
    include: list[Callable[[str], bool]]
    exclude: list[Callable[[str], bool]]

    def matches(self, changed_paths: list[str]) -> bool:
        """True if at least one changed path is included and not excluded.

        No include selectors means everything is included.
        """
        for path in changed_paths:
            if self.include and not any(m(path) for m in self.include):
                continue
            if self.exclude and any(m(path) for m in self.exclude):
                continue
            return True
        return False


def _changed_paths(mirror: _Mirror, commit_id: str) -> list[str]:
    # Kargo: `git show --pretty= --name-only --first-parent <id>`; -z keeps
    # unusual file names unquoted so selectors match them literally.
    result = mirror.git(
        ["show", "--pretty=format:", "--name-only", "--first-parent", "-z", commit_id, "--"],
        what=f"list paths changed by {commit_id[:12]}",
    )
    return [p for p in result.stdout.decode("utf-8", "surrogateescape").split("\0") if p.strip()]


# --------------------------------------------------------------------------
# NewestFromBranch
# --------------------------------------------------------------------------


def _shorten(subject: str) -> str:
    if len(subject) > SUBJECT_MAX_LENGTH:
        return subject[: SUBJECT_MAX_LENGTH - 3] + "..."
    return subject


def _parse_git_date(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise DiscoveryError(f"unexpected date {text!r} from git for {what}") from None


def _parse_since(value, shown_url: str) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise DiscoveryError(
                f"'since' for {shown_url} is not an RFC 3339 date: {value!r}"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _run_filter(expression_filter: ExpressionFilter | None, env: dict, shown_url: str) -> bool:
    if expression_filter is None:
        return True
    try:
        return bool(expression_filter(env))
    except Exception as exc:  # the hook's failure is a discovery failure
        raise DiscoveryError(f"error evaluating expressionFilter for {shown_url}: {exc}") from exc


def _newest_from_branch(
    mirror: _Mirror,
    branch: str,
    since: datetime | None,
    limit: int,
    paths_filter: _PathsFilter | None,
    expression_filter: ExpressionFilter | None,
) -> list[DiscoveredCommit]:
    shown_url = redact(mirror.url)
    target = branch or mirror.default_branch
    if not _BRANCH_RE.match(target) or len(target) > 255:
        raise DiscoveryError(f"invalid branch name {target!r} for {shown_url}")
    ref = f"refs/heads/{target}"
    exists = mirror.git(
        ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        what=f"find branch {target!r}",
        check=False,
    )
    if exists.returncode != 0:
        raise DiscoveryError(f"branch {target!r} not found in {shown_url}")

    selected: list[DiscoveredCommit] = []
    unfiltered = paths_filter is None and expression_filter is None
    # Like Kargo: list in growing batches until enough commits pass the filters
    # or the history (or the `since` window) runs out.
    skip, batch = 0, limit
    while True:
        args = [
            "log",
            "--first-parent",
            "-z",
            f"--format=%H{_FS}%cI{_FS}%an <%ae>{_FS}%cn <%ce>{_FS}%s",
            f"--max-count={batch}",
            f"--skip={skip}",
        ]
        if since is not None:
            args.append(f"--since={since.isoformat()}")
        args += [ref, "--"]
        output = mirror.git(args, what=f"list commits of branch {target!r}").stdout
        records = [r for r in output.decode("utf-8", "replace").split("\0") if r.strip()]
        if not records:
            break
        for record in records:
            fields = record.strip("\n").split(_FS, 4)
            if len(fields) != 5:
                raise DiscoveryError(f"unexpected git log output for {shown_url}: {record[:200]!r}")
            commit_id, date_text, author, committer, subject = fields
            date = _parse_git_date(date_text, f"commit {commit_id[:12]}")
            if not unfiltered:
                env = {
                    "id": commit_id,
                    "commitDate": date,
                    "author": author,
                    "committer": committer,
                    "subject": subject,
                }
                if not _run_filter(expression_filter, env, shown_url):
                    continue
                if paths_filter and not paths_filter.matches(_changed_paths(mirror, commit_id)):
                    continue
            selected.append(
                DiscoveredCommit(
                    id=commit_id,
                    # Kargo reports the subscription's branch as given: empty
                    # when the default branch was used implicitly.
                    branch=branch,
                    subject=_shorten(subject),
                    author=author,
                    committer=committer,
                    creator_date=date,
                )
            )
            if len(selected) >= limit:
                return selected
        if unfiltered or len(records) < batch:
            break  # the first batch already held up to `limit` commits, or history ended
        skip, batch = skip + batch, min(batch * 2, 1000)
    return selected


# --------------------------------------------------------------------------
# Tag-based strategies: SemVer, Lexical, NewestTag
# --------------------------------------------------------------------------


@dataclass
class _Tag:
    name: str
    commit_id: str
    subject: str
    author: str
    committer: str
    creator_date: datetime
    tagger: str = ""
    annotation: str = ""


# Annotated tags are peeled to their commit (the *-prefixed atoms); the date is
# the tag's own creation date for annotated tags and the commit date for
# lightweight ones, as in Kargo's ListTags.
_ANNOTATED_FORMAT = _FS.join(
    [
        "%(refname:lstrip=2)",
        "%(*objecttype)",
        "%(*objectname)",
        "%(*contents:subject)",
        "%(*authorname) %(*authoremail)",
        "%(*committername) %(*committeremail)",
        "%(creatordate:iso-strict)",
        "%(taggername) %(taggeremail)",
        "%(contents:subject)",
    ]
)
_LIGHTWEIGHT_FORMAT = _FS.join(
    [
        "%(refname:lstrip=2)",
        "%(objecttype)",
        "%(objectname)",
        "%(contents:subject)",
        "%(authorname) %(authoremail)",
        "%(committername) %(committeremail)",
        "%(creatordate:iso-strict)",
        "",
        "",
    ]
)
_TAG_FORMAT = f"%(if)%(*objectname)%(then){_ANNOTATED_FORMAT}%(else){_LIGHTWEIGHT_FORMAT}%(end)"


def _list_tags(mirror: _Mirror) -> list[_Tag]:
    """All tags pointing at commits, newest creator date first (git's order)."""
    output = mirror.git(
        ["for-each-ref", "--sort=-creatordate", f"--format={_TAG_FORMAT}", "refs/tags"],
        what="list tags",
    ).stdout
    tags = []
    for line in output.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        fields = line.split(_FS)
        if len(fields) != 9:
            raise DiscoveryError(
                f"unexpected git for-each-ref output for {redact(mirror.url)}: {line[:200]!r}"
            )
        name, obj_type, commit_id, subject, author, committer, date_text, tagger, annotation = (
            fields
        )
        if obj_type != "commit":
            continue  # tags of trees or blobs cannot become Freight
        tags.append(
            _Tag(
                name=name,
                commit_id=commit_id,
                subject=subject,
                author=author,
                committer=committer,
                creator_date=_parse_git_date(date_text, f"tag {name}"),
                tagger=tagger.strip(),
                annotation=annotation,
            )
        )
    return tags


def _compile_regexes(patterns, field: str, shown_url: str) -> list[re.Pattern]:
    if not patterns:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise DiscoveryError(
                f"invalid regular expression {pattern!r} in {field} for {shown_url}: {exc}"
            ) from None
    return compiled


def _tag_name_filter(sub: dict, shown_url: str) -> Callable[[str], bool]:
    """Kargo's tagBasedSelector.matchesTag: ignore rules first, then allow rules."""
    allow = _compile_regexes(sub.get("allowTagsRegexes"), "allowTagsRegexes", shown_url)
    # Deprecated: allowTags is a single regular expression.
    allow += _compile_regexes(sub.get("allowTags"), "allowTags", shown_url)
    ignore = _compile_regexes(sub.get("ignoreTagsRegexes"), "ignoreTagsRegexes", shown_url)
    # Deprecated: ignoreTags lists exact tag names.
    ignore += [re.compile("^" + re.escape(tag) + "$") for tag in sub.get("ignoreTags") or []]

    def matches(tag: str) -> bool:
        if any(r.search(tag) for r in ignore):
            return False
        return not allow or any(r.search(tag) for r in allow)

    return matches


@dataclass
class _TagRules:
    strategy: str
    name_ok: Callable[[str], bool]
    strict: bool  # strictSemvers (SemVer only)
    constraint: _Constraint  # semverConstraint (SemVer only)


def _from_tags(
    mirror: _Mirror,
    rules: _TagRules,
    limit: int,
    paths_filter: _PathsFilter | None,
    expression_filter: ExpressionFilter | None,
) -> list[DiscoveredCommit]:
    shown_url = redact(mirror.url)
    strategy = rules.strategy
    tags = [t for t in _list_tags(mirror) if rules.name_ok(t.name)]

    versions: dict[str, _SemVer] = {}
    if strategy == SEMVER:
        kept = []
        for tag in tags:
            version = parse_semver(tag.name, strict=rules.strict)
            if version is not None and rules.constraint.check(version):
                versions[tag.name] = version
                kept.append(tag)
        tags = kept

    if expression_filter is not None:
        tags = [
            t
            for t in tags
            if _run_filter(
                expression_filter,
                {
                    "tag": t.name,
                    "id": t.commit_id,
                    "creatorDate": t.creator_date,
                    "author": t.author,
                    "committer": t.committer,
                    "subject": t.subject,
                    "tagger": t.tagger,
                    "annotation": t.annotation,
                },
                shown_url,
            )
        ]

    if strategy == SEMVER:
        # Highest version first; equal versions (1.0 vs 1.0.0) in reverse
        # lexical order of the original tag, as Kargo does for determinism.
        def compare(a: _Tag, b: _Tag) -> int:
            order = versions[b.name].compare(versions[a.name])
            if order:
                return order
            return (b.name > a.name) - (b.name < a.name)

        tags.sort(key=functools.cmp_to_key(compare))
    elif strategy == LEXICAL:
        tags.sort(key=lambda t: t.name, reverse=True)
    # NEWEST_TAG: already newest first from for-each-ref.

    if paths_filter is not None:
        kept = []
        for tag in tags:
            if paths_filter.matches(_changed_paths(mirror, tag.commit_id)):
                kept.append(tag)
                if len(kept) >= limit:
                    break
        tags = kept

    return [
        DiscoveredCommit(
            id=t.commit_id,
            tag=t.name,
            subject=_shorten(t.subject),
            author=t.author,
            committer=t.committer,
            creator_date=t.creator_date,
        )
        for t in tags[:limit]
    ]


# --------------------------------------------------------------------------
# Semantic versions and constraints (Masterminds/semver v3 semantics)
# --------------------------------------------------------------------------

# Masterminds' loose NewVersion: optional "v", minor and patch optional.
_LOOSE_SEMVER_RE = re.compile(
    r"^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NUMERIC = re.compile(r"^[0-9]+$")
_IDENT = re.compile(r"^[0-9A-Za-z-]*$")
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class _SemVer:
    major: int
    minor: int
    patch: int
    pre: str
    meta: str
    original: str

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += f"-{self.pre}"
        if self.meta:
            text += f"+{self.meta}"
        return text

    def compare(self, other: _SemVer) -> int:
        """Masterminds Version.Compare: -1, 0 or 1; build metadata ignored."""
        for mine, theirs in (
            (self.major, other.major),
            (self.minor, other.minor),
            (self.patch, other.patch),
        ):
            if mine != theirs:
                return -1 if mine < theirs else 1
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        mine_parts, their_parts = self.pre.split("."), other.pre.split(".")
        for i in range(max(len(mine_parts), len(their_parts))):
            a = mine_parts[i] if i < len(mine_parts) else None
            b = their_parts[i] if i < len(their_parts) else None
            order = _compare_pre_part(a, b)
            if order:
                return order
        return 0


def _compare_pre_part(a: str | None, b: str | None) -> int:
    if a == b:
        return 0
    if a is None:  # fewer identifiers sort first
        return -1
    if b is None:
        return 1
    a_num, b_num = bool(_NUMERIC.match(a)), bool(_NUMERIC.match(b))
    if a_num and b_num:
        return -1 if int(a) < int(b) else 1
    if a_num:  # numeric identifiers sort before alphanumeric ones
        return -1
    if b_num:
        return 1
    return -1 if a < b else 1


def _valid_prerelease(pre: str) -> bool:
    for ident in pre.split("."):
        if _NUMERIC.match(ident):
            if len(ident) > 1 and ident[0] == "0":
                return False
        elif not _IDENT.match(ident):
            return False
    return True


def parse_semver(tag: str, *, strict: bool) -> _SemVer | None:
    """Kargo's pkg/controller/semver Parse: None if `tag` is not a version.

    Loose parsing (Masterminds NewVersion) accepts "v1", "1.2", "v1.2.3-rc.1".
    With strict=True the tag minus one leading "v" must also pass
    StrictNewVersion: exactly MAJOR.MINOR.PATCH, no leading zeros, optional
    pre-release and build metadata. The original tag is kept for tie-breaks.
    """
    match = _LOOSE_SEMVER_RE.match(tag)
    if not match:
        return None
    major, minor, patch = (int(g) if g else 0 for g in match.group(1, 2, 3))
    if max(major, minor, patch) > _UINT64_MAX:
        return None
    version = _SemVer(major, minor, patch, match.group(4) or "", match.group(5) or "", tag)
    if strict and not _is_strict_semver(tag.removeprefix("v")):
        return None
    return version


def _is_strict_semver(text: str) -> bool:
    parts = text.split(".", 2)
    if len(parts) != 3:
        return False
    rest = parts[2]
    if "+" in rest:
        rest, meta = rest.split("+", 1)
        if not all(_IDENT.match(p) for p in meta.split(".")):
            return False
    if "-" in rest:
        rest, pre = rest.split("-", 1)
        if not _valid_prerelease(pre):
            return False
    for number in (parts[0], parts[1], rest):
        if not _NUMERIC.match(number) or (len(number) > 1 and number[0] == "0"):
            return False
    return True


_CONSTRAINT_OPS = r"!=|=>|=<|>=|<=|~>|=|>|<|~|\^"
_CONSTRAINT_VERSION = (
    r"v?[0-9xX*]+(?:\.[0-9xX*]+)?(?:\.[0-9xX*]+)?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_TERM = rf"(?:({_CONSTRAINT_OPS})?\s*({_CONSTRAINT_VERSION}))"
_TERM_RE = re.compile(_TERM)
_GROUP_RE = re.compile(rf"^\s*{_TERM}\s*(?:(?:\s+|,\s*){_TERM}\s*)*$")
_HYPHEN_RE = re.compile(rf"\s*({_CONSTRAINT_VERSION})\s+-\s+({_CONSTRAINT_VERSION})\s*")
# Masterminds spellings that node-semver lacks.
_OP_ALIASES = {"=>": ">=", "=<": "<=", "~>": "~"}


class _Constraint:
    """A Masterminds/semver v3 constraint, evaluated with node-semver.

    Syntax translation: "," and whitespace both mean AND, "||" means OR,
    "a - b" is an inclusive range, "=>", "=<" and "~>" are aliases, and
    "!=X" becomes "<X || >X" (distributed over its AND group).
    Pre-release rule (Masterminds, not node): a pre-release version can satisfy
    an AND group only if some term of that group itself has a pre-release;
    within such a group, versions are compared plainly.
    """

    def __init__(self, text: str, shown_url: str):
        self.text = text
        self.groups: list[tuple[bool, str]] = []  # (group has a pre-release term, node range)
        if not text.strip():
            return
        rewritten = _HYPHEN_RE.sub(lambda m: f" >= {m.group(1)}, <= {m.group(2)} ", text)
        for group in rewritten.split("||"):
            if not _GROUP_RE.match(group):
                raise DiscoveryError(f"invalid semverConstraint {text!r} for {shown_url}")
            alternatives: list[list[str]] = [[]]
            has_pre = False
            for op, version in _TERM_RE.findall(group):
                version = version.removeprefix("v")
                if "-" in version.split("+", 1)[0]:
                    has_pre = True
                if op == "!=":
                    alternatives = [alt + [f"<{version}"] for alt in alternatives] + [
                        alt + [f">{version}"] for alt in alternatives
                    ]
                elif op in ("~", "~>") and re.fullmatch(r"0\.0\.0(?:[-+].*)?", version):
                    # Masterminds special-cases ~0.0.0 as "anything >= 0.0.0".
                    alternatives = [alt + [f">={version}"] for alt in alternatives]
                else:
                    term = f"{_OP_ALIASES.get(op, op)}{version}"
                    alternatives = [alt + [term] for alt in alternatives]
            node_range = " || ".join(" ".join(alt) for alt in alternatives)
            try:
                nodesemver.make_range(node_range, False)
            except ValueError:
                raise DiscoveryError(f"invalid semverConstraint {text!r} for {shown_url}") from None
            self.groups.append((has_pre, node_range))

    def check(self, version: _SemVer) -> bool:
        if not self.groups:
            return True
        plain = f"{version.major}.{version.minor}.{version.patch}"
        if version.pre:
            plain += f"-{version.pre}"
        for has_pre, node_range in self.groups:
            if version.pre and not has_pre:
                continue
            try:
                if nodesemver.satisfies(plain, node_range, loose=False, include_prerelease=True):
                    return True
            except ValueError:
                return False  # a version node-semver cannot represent
        return False
