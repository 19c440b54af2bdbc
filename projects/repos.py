"""Which repositories the server may read and write on a user's behalf.

Remote URLs (https, ssh, git) are fine. Local repositories (file:// URLs or plain paths) are
allowed only under the directories in settings.FILE_REPO_ROOTS, so that a project's Warehouse or
promotion step cannot read another project's data or any other git repository on the server.
"""

from pathlib import Path
from urllib.parse import unquote, urlparse

from django.conf import settings


class RepoNotAllowed(ValueError):
    pass


def local_path(url: str) -> Path | None:
    """The filesystem path a URL names, or None for a remote URL."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    if (
        url.startswith("/")
        or url.startswith("./")
        or url.startswith("../")
        or "://" not in url
        and ":" not in url
    ):
        return Path(url)
    return None


def check_repo_url(url: str) -> None:
    path = local_path(url)
    if path is None:
        return
    resolved = path.resolve()
    data = Path(settings.DATA_DIR).resolve()
    roots = [Path(r).resolve() for r in settings.FILE_REPO_ROOTS or default_roots()]
    # Warehouse mirrors and promotion work directories hold every project's clones: never a source.
    private = [data / "git-cache", data / "work"]
    if any(resolved == p or resolved.is_relative_to(p) for p in private):
        raise RepoNotAllowed(f"local repository {url} is inside the server's private data")
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "(none)"
        raise RepoNotAllowed(
            f"local repository {url} is outside the directories this server allows ({allowed}); "
            "set KARGO_FILE_REPO_ROOTS to allow it"
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
