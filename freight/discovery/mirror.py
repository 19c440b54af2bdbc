"""A bare mirror of one git repository, and what discovery reads from it: branch commits, tags and
the paths a commit changed (Kargo's git CLI helpers in pkg/controller/git/work_tree.go:
ListCommits, ListTags, GetDiffPathsForCommitID).

Every git call goes through `_git()`: an argument list (never a shell), a timeout, no terminal
prompts, and error messages that name the repository and quote the tail of git's stderr with any
credentials in URLs masked.

The mirror lives under `cache_dir` and is fetched on each discovery, so repeated discovery is cheap
and new commits show up on the next call.
"""

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kargo import runner
from kargo.freight_ids import normalize_git_url
from kargo.redaction import redact
from kargo.times import parse_rfc3339

from .base import DiscoveryError

# Network operations may legitimately take a while on a big repository; local ones (log, show,
# for-each-ref on the mirror) should not.
NETWORK_TIMEOUT = 300
LOCAL_TIMEOUT = 60

# Field separator for git's --format output: a character that cannot appear in names, e-mails or
# one-line subjects.
_FS = "\x1f"


@dataclass(frozen=True)
class Commit:
    id: str
    date: datetime  # committer date, aware, UTC
    author: str  # "Name <e-mail>"
    committer: str
    subject: str


@dataclass(frozen=True)
class Tag:
    name: str
    commit_id: str  # annotated tags are peeled to their commit
    subject: str
    author: str
    committer: str
    creator_date: datetime  # the tag's own date if annotated, else the commit's; aware, UTC
    tagger: str = ""
    annotation: str = ""


def _git(
    args: list[str],
    *,
    url: str,
    what: str,
    cwd: Path | None = None,
    timeout: float = LOCAL_TIMEOUT,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `git <args>` through the one runner; stdout and stderr as bytes."""
    shown = redact(url)
    try:
        result = runner.run(["git", *args], cwd=cwd, timeout=timeout, binary=True, env=env)
    except runner.CommandError as exc:
        raise DiscoveryError(f"cannot run git to {what} for {shown}: {exc}") from None
    if check and result.returncode != 0:
        detail = runner.tail(result.stderr, lines=6, chars=600) or "(no error output)"
        raise DiscoveryError(f"git failed to {what} for {shown}: {detail}")
    return result


def _git_date(text: str, what: str) -> datetime:
    # git's strict ISO 8601 dates (%cI, creatordate:iso-strict) are RFC 3339.
    parsed = parse_rfc3339(text)
    if parsed is None:
        raise DiscoveryError(f"unexpected date {text!r} from git for {what}")
    return parsed.astimezone(UTC)


class Mirror:
    """A bare repository under cache_dir mirroring one remote's branches and tags."""

    def __init__(self, repo_url: str, cache_dir: Path, auth_env: dict[str, str] | None = None):
        self.url = repo_url
        # How git authenticates to the remote (projects.credentials.git_env: an askpass helper
        # and the values in this environment only), given to every git call on the mirror.
        self.auth_env = auth_env or None
        self.shown_url = redact(repo_url)
        # Named after the normalised URL's hash: spelling variants of one URL share a mirror, and
        # nothing from the raw URL reaches the filesystem.
        key = hashlib.sha1(normalize_git_url(repo_url).encode("utf-8")).hexdigest()
        self.cache_dir = cache_dir
        self.path = cache_dir / key
        self.lock_path = cache_dir / f"{key}.lock"
        self.default_branch = ""

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
        return _git(args, url=self.url, cwd=self.path, env=self.auth_env, **kwargs)

    # ----------------------------------------------------------------------------------------------
    # Keeping the mirror in step with the remote
    # ----------------------------------------------------------------------------------------------

    def _is_valid(self) -> bool:
        if not self.path.is_dir():
            return False
        result = self.git(
            ["rev-parse", "--is-bare-repository"], what="inspect the cached mirror", check=False
        )
        return result.returncode == 0 and result.stdout.strip() == b"true"

    def _create(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)  # a broken leftover; rebuild it
        # Build in a temporary directory and rename, so a crash never leaves a half-initialised
        # mirror under the final name.
        tmp = Path(tempfile.mkdtemp(prefix=".mirror-", dir=self.cache_dir))
        try:
            _git(["init", "--bare", "--quiet", str(tmp)], url=self.url, what="create a mirror")
            _git(
                ["config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"],
                url=self.url,
                what="configure the mirror",
                cwd=tmp,
            )
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
            # The subscription may spell the URL differently from when the mirror was made (same
            # normalised form); always fetch from this one.
            self.git(["config", "remote.origin.url", self.url], what="configure the mirror")
            if need_default_branch:
                self.default_branch = self._remote_default_branch()
            # Branches are mirrored as refs/heads/*; --tags adds every tag; --prune drops deleted
            # branches and --prune-tags deleted tags (git never prunes tags fetched by --tags
            # alone), so the mirror matches the fresh clone Kargo makes; --force accepts rewritten
            # history and moved tags.
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
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
        raise DiscoveryError(
            f"cannot determine the default branch of {self.shown_url} "
            "(the repository may be empty); set 'branch' in the subscription"
        )

    # ----------------------------------------------------------------------------------------------
    # Reading it
    # ----------------------------------------------------------------------------------------------

    def has_branch(self, branch: str) -> bool:
        # Always the full ref name, so no branch name can be read as an option.
        result = self.git(
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
            what=f"find branch {branch!r}",
            check=False,
        )
        return result.returncode == 0

    def commits(
        self, branch: str, *, since: datetime | None, skip: int, count: int
    ) -> list[Commit]:
        """Up to `count` first-parent commits of `branch`, newest first, after skipping `skip`."""
        args = [
            "log",
            "--first-parent",
            "-z",
            f"--format=%H{_FS}%cI{_FS}%an <%ae>{_FS}%cn <%ce>{_FS}%s",
            f"--max-count={count}",
            f"--skip={skip}",
        ]
        if since is not None:
            args.append(f"--since={since.isoformat()}")
        args += [f"refs/heads/{branch}", "--"]
        output = self.git(args, what=f"list commits of branch {branch!r}").stdout
        commits = []
        for record in output.decode("utf-8", "replace").split("\0"):
            if not record.strip():
                continue
            fields = record.strip("\n").split(_FS, 4)
            if len(fields) != 5:
                raise DiscoveryError(
                    f"unexpected git log output for {self.shown_url}: {record[:200]!r}"
                )
            commit_id, date, author, committer, subject = fields
            commits.append(
                Commit(
                    commit_id,
                    _git_date(date, f"commit {commit_id[:12]}"),
                    author,
                    committer,
                    subject,
                )
            )
        return commits

    def tags(self) -> list[Tag]:
        """All tags pointing at commits, newest creator date first (git's order)."""
        output = self.git(
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
                    f"unexpected git for-each-ref output for {self.shown_url}: {line[:200]!r}"
                )
            name, obj_type, commit_id, subject, author, committer, date, tagger, annotation = fields
            if obj_type != "commit":
                continue  # tags of trees or blobs cannot become Freight
            tags.append(
                Tag(
                    name=name,
                    commit_id=commit_id,
                    subject=subject,
                    author=author,
                    committer=committer,
                    creator_date=_git_date(date, f"tag {name}"),
                    tagger=tagger.strip(),
                    annotation=annotation,
                )
            )
        return tags

    def changed_paths(self, commit_id: str) -> list[str]:
        # Kargo: `git show --pretty= --name-only --first-parent <id>`; -z keeps unusual file
        # names unquoted so selectors match them literally. Decoded with replacement characters:
        # RE2 reads only valid UTF-8.
        result = self.git(
            ["show", "--pretty=format:", "--name-only", "--first-parent", "-z", commit_id, "--"],
            what=f"list paths changed by {commit_id[:12]}",
        )
        return [p for p in result.stdout.decode("utf-8", "replace").split("\0") if p.strip()]


# Annotated tags are peeled to their commit (the *-prefixed atoms); the date is the tag's own
# creation date for annotated tags and the commit date for lightweight ones, as in Kargo's ListTags.
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
