"""Kargo's commit selection strategies (pkg/controller/git/commit/*_selector.go): which commits
and tags of a mirror a git subscription selects, best first.

NewestFromBranch walks a branch's first-parent history; SemVer, Lexical and NewestTag choose among
tags and differ only in which tags count and how they are ordered.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kargo.specs import GitSubscription
from kargo.times import parse_rfc3339, rfc3339
from kargo.versions import Constraint, parse_version

from .base import DiscoveryError, ExpressionFilter, passes
from .mirror import Mirror, Tag
from .paths import PathsFilter
from .tags import TagNameFilter

SUBJECT_MAX_LENGTH = 80  # Kargo shortens subjects to 77 characters + "..."
MAX_BATCH = 1000


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
            "creatorDate": rfc3339(self.creator_date),
        }
        return {key: value for key, value in data.items() if value}


@dataclass(frozen=True)
class Filters:
    """A subscription's filters, compiled before discovery touches the network."""

    paths: PathsFilter | None
    tag_names: TagNameFilter
    constraint: Constraint
    expression: ExpressionFilter | None


def _shorten(subject: str) -> str:
    if len(subject) > SUBJECT_MAX_LENGTH:
        return subject[: SUBJECT_MAX_LENGTH - 3] + "..."
    return subject


def newest_from_branch(
    mirror: Mirror, sub: GitSubscription, filters: Filters
) -> list[DiscoveredCommit]:
    branch = sub.branch or mirror.default_branch
    if not mirror.has_branch(branch):
        raise DiscoveryError(f"branch {branch!r} not found in {mirror.shown_url}")
    since = parse_rfc3339(sub.since)
    limit = sub.discoveryLimit
    unfiltered = filters.paths is None and filters.expression is None
    selected: list[DiscoveredCommit] = []
    # Like Kargo: list in growing batches until enough commits pass the filters or the history
    # (or the `since` window) runs out.
    skip, batch = 0, limit
    while True:
        commits = mirror.commits(branch, since=since, skip=skip, count=batch)
        for commit in commits:
            if not unfiltered:
                env = {
                    "id": commit.id,
                    "commitDate": commit.date,
                    "author": commit.author,
                    "committer": commit.committer,
                    "subject": commit.subject,
                }
                if not passes(filters.expression, env, mirror.shown_url):
                    continue
                if filters.paths and not filters.paths.matches(mirror.changed_paths(commit.id)):
                    continue
            selected.append(
                DiscoveredCommit(
                    id=commit.id,
                    # Kargo reports the subscription's branch as given: empty when the default
                    # branch was used implicitly.
                    branch=sub.branch or "",
                    subject=_shorten(commit.subject),
                    author=commit.author,
                    committer=commit.committer,
                    creator_date=commit.date,
                )
            )
            if len(selected) >= limit:
                return selected
        if unfiltered or len(commits) < batch:
            break  # the first batch already held up to `limit` commits, or history ended
        skip, batch = skip + batch, min(batch * 2, MAX_BATCH)
    return selected


def highest_semver(
    mirror: Mirror, sub: GitSubscription, filters: Filters
) -> list[DiscoveredCommit]:
    """Tags that are versions allowed by semverConstraint, highest version first."""
    versions = {}
    for tag in _named_tags(mirror, filters):
        version = parse_version(tag.name, strict=sub.strictSemvers)
        if version is not None and filters.constraint.allows(version):
            versions[tag] = version
    # Equal versions (1.0 and 1.0.0, or builds of one version) in reverse lexical order of the
    # tag, as Kargo does for determinism.
    ordered = sorted(versions, key=lambda tag: (versions[tag], tag.name), reverse=True)
    return _select_tags(mirror, sub, filters, ordered)


def lexical(mirror: Mirror, sub: GitSubscription, filters: Filters) -> list[DiscoveredCommit]:
    """Tags in reverse lexical order of their names."""
    ordered = sorted(_named_tags(mirror, filters), key=lambda tag: tag.name, reverse=True)
    return _select_tags(mirror, sub, filters, ordered)


def newest_tag(mirror: Mirror, sub: GitSubscription, filters: Filters) -> list[DiscoveredCommit]:
    """Tags by creator date, newest first (the order git lists them in)."""
    return _select_tags(mirror, sub, filters, _named_tags(mirror, filters))


Strategy = Callable[[Mirror, GitSubscription, Filters], list[DiscoveredCommit]]

STRATEGIES: dict[str, Strategy] = {
    "NewestFromBranch": newest_from_branch,
    "SemVer": highest_semver,
    "Lexical": lexical,
    "NewestTag": newest_tag,
}


def _named_tags(mirror: Mirror, filters: Filters) -> list[Tag]:
    return [tag for tag in mirror.tags() if filters.tag_names(tag.name)]


def _select_tags(
    mirror: Mirror, sub: GitSubscription, filters: Filters, ordered: list[Tag]
) -> list[DiscoveredCommit]:
    """Kargo's order of the remaining tag filters: the expression first (before the limit), then
    the paths (reading changed paths only until `discoveryLimit` tags qualify)."""
    tags = [
        tag
        for tag in ordered
        if passes(
            filters.expression,
            {
                "tag": tag.name,
                "id": tag.commit_id,
                "creatorDate": tag.creator_date,
                "author": tag.author,
                "committer": tag.committer,
                "subject": tag.subject,
                "tagger": tag.tagger,
                "annotation": tag.annotation,
            },
            mirror.shown_url,
        )
    ]
    if filters.paths is not None:
        kept = []
        for tag in tags:
            if filters.paths.matches(mirror.changed_paths(tag.commit_id)):
                kept.append(tag)
                if len(kept) >= sub.discoveryLimit:
                    break
        tags = kept
    return [
        DiscoveredCommit(
            id=tag.commit_id,
            tag=tag.name,
            subject=_shorten(tag.subject),
            author=tag.author,
            committer=tag.committer,
            creator_date=tag.creator_date,
        )
        for tag in tags[: sub.discoveryLimit]
    ]
