"""Which repositories the server may read and write on a user's behalf.

Remote URLs go through the egress policy (projects.egress). Local repositories (file:// URLs or
absolute paths) are allowed only under the directories in settings.FILE_REPO_ROOTS, so that a
project's Warehouse or promotion step cannot read another project's data or any other git
repository on the server.
"""

from pathlib import Path

from django.conf import settings

from kargo.redaction import redact
from kargo.remotes import parse_remote

from .egress import OutboundNotAllowed, check_outbound


class RepoNotAllowed(ValueError):
    pass


def check_repo_url(url: str) -> None:
    """Raise RepoNotAllowed unless the server may fetch from or push to `url`: a remote one must
    pass the egress policy, a local one must be absolute and lie under an allowed root."""
    remote = parse_remote(url)
    if remote.scheme != "file":
        try:
            check_outbound(url)
        except OutboundNotAllowed as exc:
            raise RepoNotAllowed(f"repository {redact(url)}: {exc}") from None
        return
    path = Path(remote.path)
    if not path.is_absolute():
        # Relative to what? The server's and git's working directories differ; never guess.
        raise RepoNotAllowed(f"local repository {url} must be an absolute file:/// URL")
    resolved = path.resolve()
    data = Path(settings.DATA_DIR).resolve()
    roots = [Path(r).resolve() for r in settings.FILE_REPO_ROOTS or default_roots()]
    # Warehouse mirrors and promotion work directories hold every project's clones: never a source.
    private = [data / "git-cache", data / "work"]
    if any(resolved == p or resolved.is_relative_to(p) for p in private):
        raise RepoNotAllowed(f"local repository {url} is inside the server's private data")
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise RepoNotAllowed(
            f"local repository {url} is outside the directories this server allows "
            "(an operator can allow more with KARGO_FILE_REPO_ROOTS)"
        )


def default_roots() -> list[Path]:
    """$KARGO_DATA_DIR/repos for local repositories, and the demo's repositories."""
    return [Path(settings.DATA_DIR) / "repos", Path(settings.DATA_DIR) / "demo" / "repos"]


def repo_urls_in(config) -> list[str]:
    """Every `repoURL` value anywhere in a (step) config."""
    found = []
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "repoURL" and isinstance(value, str):
                found.append(value)
            else:
                found += repo_urls_in(value)
    elif isinstance(config, list):
        for item in config:
            found += repo_urls_in(item)
    return found
