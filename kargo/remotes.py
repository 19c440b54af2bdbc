"""Where a repository or resource URL points: its scheme and host, whatever the spelling
(https://, ssh://, git://, file://, scp-like user@host:path, kustomize's git:: and bare
github.com/org/repo forms)."""

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# user@host:path, as git reads it: a colon before any slash, and no scheme.
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?!//)")


@dataclass(frozen=True)
class Remote:
    scheme: str  # "file" for a local path
    host: str  # "" for a local path
    path: str  # the local path for "file"; the URL's path otherwise


def parse_remote(url: str) -> Remote:
    """Parse a git/kustomize URL; a string that names no remote is a local path."""
    text = url.removeprefix("git::")
    if _SCHEME.match(text):
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return Remote("file", "", unquote(parts.path))
        return Remote(scheme, (parts.hostname or "").lower(), parts.path)
    scp = _SCP_LIKE.match(text)
    if scp and not text.startswith(("/", "./", "../")):
        return Remote("ssh", scp.group("host").strip("[]").lower(), text[scp.end() :])
    return Remote("file", "", text)


def kustomize_remote(entry: str) -> str | None:
    """The URL kustomize would fetch for a resources/components/bases entry, or None when the
    entry is local. Kustomize reads `github.com/org/repo//dir?ref=x` (a host-like first
    component, no scheme) as https."""
    text = entry.removeprefix("git::")
    if _SCHEME.match(text) or (_SCP_LIKE.match(text) and "@" in text.split(":", 1)[0]):
        return text
    first = text.split("/", 1)[0]
    if "/" in text and "." in first and not text.startswith((".", "/")):
        return f"https://{text}"
    return None
