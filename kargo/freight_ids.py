"""Kargo-compatible identifiers: Freight IDs, FreightCollection IDs, aliases.

Freight names in Kargo are content hashes, so a Freight built here from the same
artifacts as a Freight built by Kargo gets the same name. That only holds if the
recipe *and* the URL normalisation match Kargo byte for byte, which is why the
normalisers below follow Kargo's `pkg/urls` package rather than doing what
would merely be "reasonable". Pure Python; no Django.

Sources (akuity/kargo): `pkg/api/freight.go` (GenerateFreightID and the
*HashPart helpers), `pkg/urls/git.go` (NormalizeGit), `pkg/urls/helm.go`
(NormalizeChart), `pkg/urls/image.go` (NormalizeImage), `pkg/urls/common.go`
(SanitizeURL), `api/v1alpha1/stage_types.go` (FreightCollection.UpdateOrPush)
and `freight_types.go` (FreightOrigin.String).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

import coolname

__all__ = [
    "collection_id",
    "freight_id",
    "generate_alias",
    "normalize_chart_url",
    "normalize_git_url",
]

# Freight produced by this project always comes from a Warehouse.
ORIGIN_KIND = "Warehouse"


# --------------------------------------------------------------------------
# Small emulations of the Go standard library behaviour Kargo relies on.
# --------------------------------------------------------------------------


def _sanitize(url: str) -> str:
    """Kargo's SanitizeURL: drop non-printable runes anywhere, trim whitespace.

    Python's str.isprintable() and Go's unicode.IsPrint() agree: both treat the
    control, format, private-use, surrogate, unassigned and separator categories
    as non-printable, except the ASCII space. So a BOM, NBSP or zero-width space
    pasted along with a URL disappears, while an internal ASCII space survives.
    """
    return "".join(ch for ch in url if ch.isprintable()).strip()


_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters Go's url.Parse accepts in a host (RFC 3986 reg-name and sub-delims,
# plus the brackets of IPv6 literals and a few Go tolerates for zone IDs).
_HOST_RE = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%]*$")


def _go_url_parse_ok(url: str) -> bool:
    """Approximate the cases where Go's url.Parse returns an error.

    Kargo returns URLs it cannot parse unchanged, so "cannot parse" has to line
    up with Go for normalisation to agree. Covered: ASCII control characters,
    malformed percent-escapes, invalid characters in the host (a space, most
    commonly) and a non-numeric port.
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    before_query = url.split("?", 1)[0]
    if _PERCENT_RE.search(before_query):
        return False
    if "#" in url and _PERCENT_RE.search(url.split("#", 1)[1]):
        return False
    if "://" in url:
        authority = url.split("://", 1)[1]
        authority = re.split(r"[/?#]", authority, maxsplit=1)[0]
        host = authority.rsplit("@", 1)[-1]
        if not _HOST_RE.match(host):
            return False
        # Go's validOptionalPort: whatever follows the last colon outside an
        # IPv6 literal must be digits (or nothing).
        hostport = host.rsplit("]", 1)[-1]
        if ":" in hostport:
            port = hostport.rsplit(":", 1)[1]
            if port and not port.isdigit():
                return False
    return True


def _go_query_has_params(raw_query: str) -> bool:
    """True when Go's url.Values parse of the query yields at least one key.

    Go skips empty segments ("a?&") and segments containing ';' or invalid
    escapes, but counts "=x" (an empty key) as a parameter.
    """
    for segment in raw_query.split("&"):
        if not segment or ";" in segment:
            continue
        key = segment.split("=", 1)[0]
        if _PERCENT_RE.search(key):
            continue
        return True
    return False


# Characters that may stay unescaped in a path Go re-serialises (RFC 3986 pchar
# plus "/"); everything else (space, quotes, non-ASCII...) is percent-encoded,
# as url.URL.String() does. Existing %XX escapes are kept as they are.
_PATH_SAFE = "/-._~!$&'()*+,;=:@%"


def _go_path_clean(path: str) -> str:
    """Go's path.Clean (lexical; collapses "//", resolves "." and "..")."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(segment)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_path_join(*elems: str) -> str:
    """Go's path.Join: join the non-empty elements with "/" and Clean.

    Note this turns "https://host/x" into "https:/host/x" because Clean
    collapses the double slash; Kargo's chart hash part inherits that, so we
    must too.
    """
    non_empty = [e for e in elems if e]
    if not non_empty:
        return ""
    return _go_path_clean("/".join(non_empty))


# --------------------------------------------------------------------------
# URL normalisation
# --------------------------------------------------------------------------


def normalize_git_url(url: str) -> str:
    """Kargo's NormalizeGit (current `pkg/urls/git.go`).

    For http(s) URLs: lowercase everything, drop non-printables and surrounding
    whitespace, drop user info, strip one trailing "/" and then one ".git".
    URLs with query parameters, or that Go's URL parser would reject, come back
    exactly as given. Every other form (file://, plain local paths, ssh://,
    scp-style) also comes back untouched: current Kargo only normalises
    http(s) since SSH support was deprecated. This keeps file:// URLs and local
    paths working, with their case (significant on a filesystem) preserved.
    """
    original = url
    candidate = _sanitize(url.lower())
    if not (candidate.startswith("http://") or candidate.startswith("https://")):
        return original
    if not _go_url_parse_ok(candidate):
        return original
    try:
        parts = urlsplit(candidate)
    except ValueError:  # e.g. an unbalanced IPv6 bracket, which Go rejects too
        return original
    if _go_query_has_params(parts.query):
        return original
    netloc = parts.netloc.rsplit("@", 1)[-1]  # user info removed
    path = parts.path.removesuffix("/").removesuffix(".git")
    rebuilt = f"{parts.scheme}://{netloc}{quote(path, safe=_PATH_SAFE)}"
    # Go's URL.String() keeps a "?" whose query holds no parameters ("?" or
    # "?&") and drops an empty fragment.
    if "?" in candidate.split("#", 1)[0]:
        rebuilt += "?" + parts.query
    if parts.fragment:
        rebuilt += "#" + parts.fragment
    return rebuilt


_REPOSITORY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-./")
_TAG_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY_RE = re.compile(r"^(?:[A-Za-z0-9\-._~]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$")


def _parse_repository(name: str) -> tuple[str, str] | None:
    """go-containerregistry name.NewRepository with weak validation.

    Returns (registry, repository) or None where Go would return an error.
    """
    if not name:
        return None
    registry, repo = "", name
    first, sep, rest = name.partition("/")
    # The first component is a registry only if it looks like a host.
    if sep and ("." in first or ":" in first):
        registry, repo = first, rest
    if not (2 <= len(repo) <= 255) or not set(repo) <= _REPOSITORY_CHARS:
        return None
    if registry and not _REGISTRY_RE.match(registry):
        return None
    if registry in ("", "docker.io"):
        registry = "index.docker.io"
    # Docker Hub single-component names live in the implicit "library/".
    if "/" not in repo and registry == "index.docker.io":
        repo = "library/" + repo
        if len(repo) > 255:
            return None
    return registry, repo


def _parse_reference(ref: str) -> tuple[str, str] | None:
    """go-containerregistry name.ParseReference(ref, WeakValidation)."""
    if ref.startswith("http://") or ref.startswith("https://"):
        return None
    # As a tag reference: a trailing ":x" is a tag unless it contains "/"
    # (then the colon belonged to a registry port).
    base, tag = ref, ""
    head, sep, tail = ref.rpartition(":")
    if sep and "/" not in tail:
        base, tag = head, tail
    if not tag or _TAG_RE.match(tag):
        parsed = _parse_repository(base)
        if parsed:
            return parsed
    # As a digest reference.
    pieces = ref.split("@")
    if len(pieces) == 2 and _DIGEST_RE.match(pieces[1]):
        base = pieces[0]
        head, sep, tail = base.rpartition(":")
        if sep and "/" not in tail and _TAG_RE.match(tail):
            base = head
        return _parse_repository(base)
    return None


def _normalize_image(repo_url: str) -> str:
    """Kargo's NormalizeImage: Docker Hub spellings collapse to "org/repo".

    Anything go-containerregistry cannot parse as an image reference (http(s)
    chart repository URLs, for one) is returned unchanged.
    """
    parsed = _parse_reference(repo_url)
    if parsed is None:
        return repo_url
    registry, repo = parsed
    if registry in ("index.docker.io", "registry-1.docker.io"):
        return repo.removeprefix("library/")
    return f"{registry}/{repo}"


def normalize_chart_url(url: str) -> str:
    """Kargo's NormalizeChart: sanitise, lowercase, drop "oci://", then
    NormalizeImage (so "oci://docker.io/x/y", "docker.io/x/y" and "x/y" agree).

    Classic http(s) chart repository URLs are only sanitised and lowercased;
    Kargo does not trim their trailing slash.
    """
    original = url
    candidate = _sanitize(url)
    if not _go_url_parse_ok(candidate):
        return original
    return _normalize_image(candidate.lower().removeprefix("oci://"))


# --------------------------------------------------------------------------
# IDs
# --------------------------------------------------------------------------


def _with_subscription(part: str, item: Mapping) -> str:
    # Named subscriptions make otherwise identical artifacts distinct Freight.
    # Unnamed ones add nothing, so IDs for them match older Kargo releases that
    # predate subscription names.
    name = item.get("subscriptionName") or ""
    return f"{part}:{name}" if name else part


def _commit_part(commit: Mapping) -> str:
    repo = normalize_git_url(commit.get("repoURL", ""))
    commit_id = commit.get("id", "")
    tag = commit.get("tag") or ""
    # The tag is part of the identity: re-tagging a commit (v1.0.0-rc.1 ->
    # v1.0.0) must yield new Freight even though the SHA is the same.
    part = f"{repo}:{tag}:{commit_id}" if tag else f"{repo}:{commit_id}"
    return _with_subscription(part, commit)


def _image_part(image: Mapping) -> str:
    # Both tag and digest: a mutable tag can get a new digest, and a known
    # digest can be re-tagged; either must produce new Freight. Kargo does not
    # normalise the image repository URL here.
    part = f"{image.get('repoURL', '')}:{image.get('tag', '')}@{image.get('digest', '')}"
    return _with_subscription(part, image)


def _chart_part(chart: Mapping) -> str:
    joined = _go_path_join(normalize_chart_url(chart.get("repoURL", "")), chart.get("name", ""))
    return _with_subscription(f"{joined}:{chart.get('version', '')}", chart)


def _artifact_part(artifact: Mapping) -> str:
    return (
        f"{artifact.get('artifactType', '')}:"
        f"{artifact.get('subscriptionName', '')}:"
        f"{artifact.get('version', '')}"
    )


def freight_hash_parts(
    commits: Iterable[Mapping] = (),
    images: Iterable[Mapping] = (),
    charts: Iterable[Mapping] = (),
    artifacts: Iterable[Mapping] = (),
) -> list[str]:
    """The sorted per-artifact strings that freight_id() hashes (for debugging)."""
    parts = [_commit_part(c) for c in commits]
    parts += [_image_part(i) for i in images]
    parts += [_chart_part(c) for c in charts]
    parts += [_artifact_part(a) for a in artifacts]
    # Go's slices.Sort on strings compares bytes; Python compares code points,
    # which orders UTF-8 strings identically.
    return sorted(parts)


def freight_id(
    origin_name: str,
    commits: list[dict],
    images: list[dict],
    charts: list[dict],
    artifacts: Iterable[dict] = (),
) -> str:
    """Kargo's GenerateFreightID for Freight whose origin is a Warehouse.

    sha1("Warehouse/<name>:" + "|".join(sorted(parts))), lowercase hex.
    """
    parts = freight_hash_parts(commits, images, charts, artifacts)
    preimage = f"{ORIGIN_KIND}/{origin_name}:" + "|".join(parts)
    return hashlib.sha1(preimage.encode("utf-8")).hexdigest()


def collection_id(freight_names: list[str]) -> str:
    """FreightCollection.ID: sha1 of the sorted Freight names joined by ","."""
    return hashlib.sha1(",".join(sorted(freight_names)).encode("utf-8")).hexdigest()


def generate_alias(taken: set[str]) -> str:
    """A readable "adjective-animal" alias not already in `taken`.

    Kargo uses the moniker library for this; coolname's two-word slugs have the
    same shape. The word space is large, so a handful of attempts is plenty;
    the random suffix only guards against a pathologically full `taken` set.
    """
    for _ in range(100):
        alias = coolname.generate_slug(2)
        if alias not in taken:
            return alias
    while True:
        alias = f"{coolname.generate_slug(2)}-{secrets.token_hex(2)}"
        if alias not in taken:
            return alias
