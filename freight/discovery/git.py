"""Git subscriptions: discovery of commits the way Kargo's git commit selectors do it.

Kargo's selectors live in `pkg/controller/git/commit/`; this package re-implements their
behaviour with the git CLI (only the facts are shared, not code): `mirror` keeps a bare mirror per
repository and reads it, `strategies` selects and orders commits and tags, and `paths`, `tags`
and `versions` hold the include/exclude, tag-name and semantic-version rules.
"""

from pathlib import Path

from kargo.redaction import redact
from kargo.specs import GitSubscription
from kargo.versions import Constraint

from .base import DiscoveryError, ExpressionFilter
from .mirror import Mirror
from .paths import paths_filter
from .strategies import STRATEGIES, DiscoveredCommit, Filters
from .tags import tag_name_filter


def discover_git(
    sub: GitSubscription,
    cache_dir: Path,
    *,
    expression_filter: ExpressionFilter | None = None,
    auth_env: dict[str, str] | None = None,
) -> list[DiscoveredCommit]:
    """Discover commits for a Kargo git subscription.

    Returns at most `discoveryLimit` commits, best first: index 0 is what a new Freight would use.
    `expressionFilter` in `sub` is not evaluated here; pass `expression_filter` to have it applied
    where Kargo applies it (before path filters and before the discovery limit). `auth_env`: what
    git's environment needs for the stored credential of the repository
    (projects.credentials.git_env); discovery itself reads no database.
    """
    shown_url = redact(sub.repoURL)
    if sub.repoURL.startswith("-"):
        # Kargo's scp-style pattern allows it, but git could take it for an option.
        raise DiscoveryError(f"invalid repoURL {shown_url!r}: must not start with '-'")
    # Everything that can be wrong with the subscription itself is found before the network is
    # touched, as Kargo does when it builds its selector.
    try:
        filters = Filters(
            paths=paths_filter(sub.includePaths, sub.excludePaths),
            tag_names=tag_name_filter(sub),
            constraint=Constraint(sub.semverConstraint or ""),
            expression=expression_filter,
        )
    except ValueError as exc:
        raise DiscoveryError(f"{exc} for {shown_url}") from None

    strategy = sub.commitSelectionStrategy
    mirror = Mirror(sub.repoURL, Path(cache_dir), auth_env or {})
    with mirror.locked():
        mirror.sync(need_default_branch=strategy == "NewestFromBranch" and not sub.branch)
        return STRATEGIES[strategy](mirror, sub, filters)
