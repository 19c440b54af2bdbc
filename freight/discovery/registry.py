"""A client for the OCI distribution API (v2), the protocol every container registry speaks:
tag listing with paging, manifests (by tag or digest, GET or HEAD) and blobs, behind the
registry's token handshake or basic auth. Image and OCI chart discovery use it.

Every request goes through projects.outbound (the egress policy on every request and redirect,
time and size budgets). Credentials travel only in the Authorization header of requests to the
registry's own host (and to the token realm it names); no message this module raises carries a
header, a token or a password.

Naming and scheme follow go-containerregistry, which Kargo's registry client is built on: a
first path component holding "." or ":" is the registry host, anything else is Docker Hub
(index.docker.io, single-component names under "library/"); registries on loopback hosts are
reached over plain HTTP, every other registry over HTTPS (insecureSkipTLSVerify only skips the
certificate check).
"""

import base64
import hashlib
import ipaddress
import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from projects.outbound import Answer, OutboundError, Request, send

from .base import DiscoveryError

DOCKER_HUB = "index.docker.io"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))

TAGS_PAGE_SIZE = 1000
MAX_TAG_PAGES = 1000  # a million tags; a registry that pages forever is cut off
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what the distribution spec lets registries refuse above
TIMEOUT = 30.0  # seconds per request, as Kargo's response header timeout

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(DiscoveryError):
    """A registry request failed; the message names the repository and why, never a secret."""


@dataclass(frozen=True)
class ImageRepo:
    """An image repository as go-containerregistry parses one: registry host and path."""

    registry: str  # host[:port] as written, DOCKER_HUB for Docker Hub
    path: str  # e.g. "library/nginx"

    @property
    def name(self) -> str:
        """The canonical name, the one metadata is cached under."""
        return f"{self.registry}/{self.path}"

    @property
    def base_url(self) -> str:
        scheme = "http" if is_loopback(self.registry) else "https"
        return f"{scheme}://{self.registry}"


def parse_image_repo(repo_url: str) -> ImageRepo:
    """`repo_url` (an image repoURL, or an oci:// chart repoURL without its scheme) as registry
    and repository path. Raises RegistryError for a name no registry could serve."""
    name = repo_url.strip()
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    if registry == "docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not re.fullmatch(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*", path):
        raise RegistryError(
            f"invalid image repository {repo_url!r}: a repository path is lowercase letters, "
            "digits and separators (. _ -) in /-separated components"
        )
    return ImageRepo(registry, path)


def is_loopback(hostport: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1, with or without a port."""
    host = hostport
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Manifest:
    media_type: str
    digest: str
    body: dict


@dataclass
class RegistryClient:
    """One repository's client for one discovery: it keeps the bearer token it was given and
    counts the requests it made (by kind), which tests and the benchmark read."""

    repo: ImageRepo
    shown: str  # the repoURL as the user wrote it, for messages
    credentials: tuple[str, str] | None = None
    insecure: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    _authorization: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ----------------------------------------------------------------------------------------
    # The API
    # ----------------------------------------------------------------------------------------

    def list_tags(self) -> list[str]:
        """Every tag of the repository, following the registry's Link header from page to page."""
        url = f"{self.repo.base_url}/v2/{self.repo.path}/tags/list?n={TAGS_PAGE_SIZE}"
        tags: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            answer = self._get("tags", url, "application/json", MAX_MANIFEST_BYTES)
            if answer.status == 404:
                raise self._failed(answer, "listing tags")
            self._check(answer, "listing tags")
            try:
                page = json.loads(answer.body)
                names = page.get("tags") or []
                if not all(isinstance(tag, str) for tag in names):
                    raise ValueError("tags is not a list of strings")
            except (ValueError, AttributeError) as exc:
                raise RegistryError(
                    f"registry {self.repo.registry} sent a malformed tag list for {self.shown}: "
                    f"{str(exc)[:200]}"
                ) from None
            tags += names
            link = _NEXT_LINK.search(answer.headers.get("link", ""))
            if not link:
                return tags
            url = urljoin(url, link.group(1))
            if urlsplit(url).netloc != urlsplit(self.repo.base_url).netloc:
                # The registry's credentials are never sent to another host.
                raise RegistryError(
                    f"registry {self.repo.registry} pointed the tag list of {self.shown} "
                    "to another host"
                )
        raise RegistryError(
            f"registry {self.repo.registry} listed more than {MAX_TAG_PAGES} pages of tags "
            f"for {self.shown}"
        )

    def head_manifest(self, reference: str) -> str | None:
        """The digest a tag (or digest) points to, from a HEAD request: None if there is no
        such manifest, or if the registry does not say (then the caller GETs it)."""
        answer = self._send("HEAD", self._manifest_url(reference), ACCEPT, "head", 0)
        if answer.status == 404:
            return None
        self._check(answer, f"reading the manifest of {reference!r}")
        digest = answer.headers.get("docker-content-digest", "")
        return digest if _DIGEST_RE.match(digest) else None

    def get_manifest(self, reference: str) -> Manifest | None:
        """A manifest or index by tag or digest; None if the registry has none by that name."""
        answer = self._get("manifest", self._manifest_url(reference), ACCEPT, MAX_MANIFEST_BYTES)
        if answer.status == 404:
            return None
        what = f"the manifest of {reference!r}"
        self._check(answer, f"reading {what}")
        computed = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        if reference.startswith("sha256:") and computed != reference:
            raise self.malformed(what, "its content does not match its digest")
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise self.malformed(what, "it is not JSON") from None
        if not isinstance(body, dict):
            raise self.malformed(what, "it is not a JSON object")
        media_type = body.get("mediaType") or answer.headers.get("content-type", "").split(";")[0]
        # The digest of what was served (the registry's header names the same bytes).
        return Manifest(media_type=str(media_type), digest=computed, body=body)

    def get_blob(self, digest: str, max_bytes: int = MAX_MANIFEST_BYTES) -> bytes:
        if not _DIGEST_RE.match(digest):
            raise self.malformed("a manifest", f"it names an invalid blob digest {digest[:80]!r}")
        url = f"{self.repo.base_url}/v2/{self.repo.path}/blobs/{digest}"
        answer = self._get("blob", url, "*/*", max_bytes)
        self._check(answer, f"reading blob {digest}")
        if "sha256:" + hashlib.sha256(answer.body).hexdigest() != digest:
            raise self.malformed(f"blob {digest}", "its content does not match its digest")
        return answer.body

    # ----------------------------------------------------------------------------------------
    # Requests, authentication and errors
    # ----------------------------------------------------------------------------------------

    def _manifest_url(self, reference: str) -> str:
        return f"{self.repo.base_url}/v2/{self.repo.path}/manifests/{reference}"

    def _get(self, kind: str, url: str, accept: str, max_bytes: int) -> Answer:
        return self._send("GET", url, accept, kind, max_bytes)

    def _send(self, method: str, url: str, accept: str, kind: str, max_bytes: int) -> Answer:
        answer = self._once(method, url, accept, kind, max_bytes)
        if answer.status == 401 and self._authenticate(answer):
            answer = self._once(method, url, accept, kind, max_bytes)
        return answer

    def _once(self, method: str, url: str, accept: str, kind: str, max_bytes: int) -> Answer:
        headers = {"Accept": accept}
        if self._authorization:
            headers["Authorization"] = self._authorization
        with self._lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1
        try:
            return send(
                Request(
                    method,
                    url,
                    headers=headers,
                    timeout=TIMEOUT,
                    insecure=self.insecure,
                    max_bytes=max(max_bytes, 1),
                )
            )
        except OutboundError as exc:
            raise RegistryError(f"registry {self.repo.registry} for {self.shown}: {exc}") from None
        except ValueError as exc:  # the egress policy's refusal
            raise RegistryError(f"registry {self.repo.registry} for {self.shown}: {exc}") from None

    def _authenticate(self, answer: Answer) -> bool:
        """Answer the registry's challenge (WWW-Authenticate): fetch a bearer token from its
        realm, or use basic auth. False when there is nothing more to try."""
        challenge = answer.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        basic = None
        if self.credentials:
            user, password = self.credentials
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        with self._lock:
            tried = self._authorization
        if scheme == "basic":
            if basic is None or tried == basic:
                return False
            with self._lock:
                self._authorization = basic
            return True
        if scheme != "bearer":
            return False
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(
                f"registry {self.repo.registry} sent an unusable token realm for {self.shown}"
            )
        query = {"scope": params.get("scope") or f"repository:{self.repo.path}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Accept": "application/json"}
        if basic:
            headers["Authorization"] = basic
        with self._lock:
            self.requests["token"] = self.requests.get("token", 0) + 1
        separator = "&" if "?" in realm else "?"
        try:
            token_answer = send(
                Request(
                    "GET",
                    f"{realm}{separator}{urlencode(query)}",
                    headers=headers,
                    timeout=TIMEOUT,
                    insecure=self.insecure,
                    max_bytes=1024 * 1024,
                )
            )
        except (OutboundError, ValueError) as exc:
            raise RegistryError(
                f"token service of registry {self.repo.registry} for {self.shown}: {exc}"
            ) from None
        if token_answer.status in (401, 403):
            raise RegistryError(
                f"token service of registry {self.repo.registry} refused "
                f"{'the credentials' if basic else 'anonymous access'} for {self.shown} "
                f"(HTTP {token_answer.status})"
            )
        try:
            data = json.loads(token_answer.body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if token_answer.status != 200 or not isinstance(token, str) or not token:
            raise RegistryError(
                f"token service of registry {self.repo.registry} gave no token for {self.shown} "
                f"(HTTP {token_answer.status})"
            )
        bearer = f"Bearer {token}"
        with self._lock:
            if bearer == tried:
                return False
            self._authorization = bearer
        return True

    def _check(self, answer: Answer, doing: str) -> None:
        if answer.status >= 400:
            raise self._failed(answer, doing)

    def _failed(self, answer: Answer, doing: str) -> RegistryError:
        reason = {
            401: "unauthorized: "
            + ("the credentials were refused" if self.credentials else "credentials are needed"),
            403: "forbidden",
            404: "repository not found",
            429: "too many requests",
        }.get(answer.status, "")
        parts = [part for part in (_registry_error(answer.body), reason) if part]
        detail = f" ({'; '.join(parts)})" if parts else ""
        return RegistryError(
            f"registry {self.repo.registry} answered HTTP {answer.status}{detail} "
            f"while {doing} of {self.shown}"
        )

    def malformed(self, what: str, why: str) -> RegistryError:
        return RegistryError(
            f"registry {self.repo.registry} sent a malformed manifest for {self.shown}: "
            f"{what}: {why}"
        )


def _registry_error(body: bytes) -> str:
    """The first error of a registry's error envelope ({"errors": [{"code", "message"}]})."""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return ""
    return text[:200]
