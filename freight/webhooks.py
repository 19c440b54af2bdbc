"""Webhook receivers, as Kargo's external webhook server has them (pkg/webhook/external): how each
sender proves a delivery is its own, what its payload says changed, and which Warehouses that
concerns. Pure logic over bytes, headers and typed specs; the endpoint, the lookup of receivers
and the refreshes are in freight.receivers.

A receiver's URL path is `/webhook/<kind>/<sha256(project + receiver name + secret)>` (Kargo's
buildWebhookPath), so it changes when the secret does. Senders prove themselves by:
  github     X-Hub-Signature-256: HMAC-SHA256 of the raw body ("sha256=<hex>")
  gitlab     X-Gitlab-Token equal to the secret (key `secret-token`)
  bitbucket  X-Hub-Signature: HMAC of the raw body ("sha256=<hex>"; "sha1=" also accepted)
  gitea      X-Hub-Signature-256 as GitHub's, or X-Gitea-Signature (bare hex HMAC-SHA256)
  harbor     Authorization equal to the secret (key `auth-header`)
  artifactory X-JFrog-Event-Auth: hex HMAC-SHA256 of the raw body (key `secret-token`)
  dockerhub, quay, azure, generic: nothing but the secret in the path (as in Kargo)
Every comparison is constant-time (hmac.compare_digest).

A verified delivery becomes an Event: a ping to answer, something to ignore, repository URLs
(normalised as Kargo's pkg/urls does) with qualifiers (git refs, image tags, chart versions) and
changed files, or, for the generic receiver, the actions to evaluate.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kargo import jsonio
from kargo.expressions import ExpressionError, evaluate, evaluate_template
from kargo.freight_ids import normalize_chart_url, normalize_git_url
from kargo.specs import WarehouseSpec
from kargo.specs.project import GenericWebhookAction, WebhookReceiver
from kargo.versions import Constraint, parse_version

from .discovery.paths import paths_filter
from .discovery.tags import tag_name_filter

# Kargo's getMaxRequestBodyBytes (2 MiB); a body over it is refused with 413 before it is parsed.
MAX_BODY_BYTES = 2 << 20
MAX_JSON_DEPTH = 64
# GitHub puts at most this many commits in a push; with more, path filters cannot be trusted.
GITHUB_MAX_COMMITS = 2048

KINDS = (
    "artifactory",
    "azure",
    "bitbucket",
    "dockerhub",
    "generic",
    "gitea",
    "github",
    "gitlab",
    "harbor",
    "quay",
)
# The key of the receiver's Secret whose value is its token (Kargo's *SecretDataKey constants).
SECRET_KEYS = {kind: "secret" for kind in KINDS} | {
    "gitlab": "secret-token",
    "artifactory": "secret-token",
    "harbor": "auth-header",
}
PING_MESSAGE = "ping event received, webhook is configured correctly"


class WebhookError(Exception):
    """A delivery refused; `status` is the HTTP answer, the message is safe to send back."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Delivery:
    """One inbound request. `headers` must look names up case-insensitively (Django's
    request.headers does; tests may use a dict with the exact names)."""

    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
    header_lists: Mapping[str, list[str]] | None = None

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""


@dataclass(frozen=True)
class Event:
    """What a verified delivery asks for.

    `reply`: answer 200 with `message` and change nothing (pings, events that need no work).
    `refresh`: refresh the Warehouses subscribed to one of `repo_urls` (already normalised) for
    which one of `qualifiers` matters (none: all of them), considering `changed_files` (None: not
    known, so no path filter applies).
    `generic`: evaluate the generic receiver's actions against `env`.
    """

    action: str
    summary: str = ""
    message: str = ""
    repo_urls: tuple[str, ...] = ()
    qualifiers: tuple[str, ...] = ()
    changed_files: tuple[str, ...] | None = None
    env: dict[str, Any] | None = None


def reply(message: str = "", summary: str = "") -> Event:
    return Event("reply", summary=summary or message, message=message)


def refresh(
    summary: str,
    repo_urls,
    qualifiers=(),
    changed_files=None,
) -> Event:
    """Kargo's refreshWarehouses preamble: de-duplicated, empty strings dropped."""
    urls = tuple(sorted({u for u in repo_urls if u}))
    quals = tuple(sorted({q for q in qualifiers if q}))
    files = None if changed_files is None else tuple(sorted(set(changed_files)))
    return Event("refresh", summary, "", urls, quals, files)


# --------------------------------------------------------------------------
# Receivers: kind, secret, path
# --------------------------------------------------------------------------


def receiver_kind(receiver: WebhookReceiver) -> str:
    """The sender a receiver is configured for: its one kind key."""
    kinds = [kind for kind in KINDS if getattr(receiver, kind) is not None]
    if len(kinds) != 1:
        raise ValueError(
            f"webhook receiver {receiver.name!r} must configure exactly one of {', '.join(KINDS)}"
        )
    return kinds[0]


def secret_name(receiver: WebhookReceiver) -> str:
    return getattr(receiver, receiver_kind(receiver)).secretRef.name


def secret_value(kind: str, data: Mapping[str, str]) -> str:
    """The receiver's token from its Secret's data; the error names the key, never a value."""
    key = SECRET_KEYS[kind]
    value = data.get(key)
    if value is None:
        raise ValueError(f"missing data key {key!r} for a {kind} webhook receiver")
    return value


def receiver_path(project: str, kind: str, name: str, secret: str, base_path: str = "") -> str:
    """Kargo's buildWebhookPath: sha256 of project, receiver name and secret, concatenated.
    Changing this changes every URL users have configured in their senders."""
    digest = hashlib.sha256((project + name + secret).encode()).hexdigest()
    return f"{base_path.rstrip('/')}/webhook/{kind}/{digest}"


def receiver_details(project: str, receiver: WebhookReceiver, secret: str, public_url: str):
    """status.webhookReceivers[] for one receiver: {name, path, url}."""
    parts = urlsplit(public_url)
    path = receiver_path(project, receiver_kind(receiver), receiver.name, secret, parts.path)
    return {"name": receiver.name, "path": path, "url": f"{parts.scheme}://{parts.netloc}{path}"}


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------

_HUB_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def check_hub_signature(signature: str, body: bytes, key: str) -> None:
    """go-github's ValidateSignature: "<algorithm>=<hex HMAC of the body>". 401 when absent
    or wrong; the answer never says which part was wrong."""
    if not signature:
        raise WebhookError(401, "missing signature")
    algorithm, _, hex_mac = signature.partition("=")
    digest = _HUB_DIGESTS.get(algorithm)
    if digest is None:
        raise WebhookError(401, "unauthorized")
    check_hex_hmac(hex_mac, body, key, digest)


def check_hex_hmac(hex_mac: str, body: bytes, key: str, digest=hashlib.sha256) -> None:
    expected = hmac.new(key.encode(), body, digest).hexdigest()
    if not hex_mac or not hmac.compare_digest(hex_mac.strip().lower().encode(), expected.encode()):
        raise WebhookError(401, "unauthorized")


def check_token(given: str, secret: str, missing: str = "unauthorized") -> None:
    if not given:
        raise WebhookError(401, missing)
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise WebhookError(401, "unauthorized")


# --------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """The body as JSON within budget; 400 naming what is wrong."""
    try:
        return jsonio.loads(body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_JSON_DEPTH)
    except (jsonio.JSONInputError, UnicodeDecodeError) as exc:
        raise WebhookError(400, f"invalid request body: {exc}") from None


def _obj(body: bytes) -> dict:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise WebhookError(400, "invalid request body: expected a JSON object")
    return data


def _get(data: Any, *path: str | int, default: Any = None) -> Any:
    """data[path[0]][path[1]]... or `default` where anything on the way is missing."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or len(data) <= key:
                return default
            data = data[key]
        elif isinstance(data, dict):
            data = data.get(key)
        else:
            return default
    return default if data is None else data


def _str(data: Any, *path: str | int) -> str:
    value = _get(data, *path, default="")
    return value if isinstance(value, str) else ""


def _list(data: Any, *path: str | int) -> list:
    value = _get(data, *path, default=[])
    return value if isinstance(value, list) else []


def normalize_image_url(url: str) -> str:
    """Kargo's NormalizeImage. It is NormalizeChart without the "oci://" trim (which only
    NormalizeChart does); an "oci://" reference is no image reference, so it stays as given."""
    if url.strip().lower().startswith("oci://"):
        return url
    return normalize_chart_url(url)


_HELM_PREFIX = "application/vnd.cncf.helm"
_IMAGE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)


def image_repo_urls(repo_url: str, media_type: str) -> list[str]:
    """Kargo's getNormalizedImageRepoURLs: the URL as a chart or an image repository where the
    media type tells which, else both (an OCI manifest may be either)."""
    if media_type.startswith(_HELM_PREFIX):
        return [normalize_chart_url(repo_url)]
    if media_type in _IMAGE_MEDIA_TYPES:
        return [normalize_image_url(repo_url)]
    return list(dict.fromkeys([normalize_image_url(repo_url), normalize_chart_url(repo_url)]))


def _changed_files(commits: list) -> list[str]:
    files = []
    for commit in commits:
        for key in ("added", "modified", "removed"):
            files += [f for f in _list(commit, key) if isinstance(f, str)]
    return files


# -- GitHub -----------------------------------------------------------------


def github(delivery: Delivery, secret: str) -> Event:
    check_hub_signature(delivery.header("X-Hub-Signature-256"), delivery.body, secret)
    event = delivery.header("X-GitHub-Event")
    if event not in ("ping", "push", "package", "registry_package", "pull_request"):
        raise WebhookError(400, f"event type {event!r} is not supported")
    payload = _obj(delivery.body)
    if event == "ping":
        return reply(PING_MESSAGE, "GitHub ping")
    if event == "pull_request":
        # Kargo refreshes Promotions waiting in git-wait-for-pr on closed pull requests; this
        # server's promotions poll instead (nothing here waits for this event).
        return reply("pull_request events are not acted upon", "GitHub pull_request")
    if event == "push":
        repo = _get(payload, "repository", default={})
        urls = [
            normalize_git_url(_str(repo, "clone_url")),
            normalize_git_url(_str(repo, "ssh_url")),
        ]
        commits = _list(payload, "commits")
        files = None
        if len(commits) < GITHUB_MAX_COMMITS:
            head = _get(payload, "head_commit")
            files = _changed_files([*commits, *([head] if isinstance(head, dict) else [])])
        ref = _str(payload, "ref")
        return refresh(f"GitHub push to {ref} of {urls[0]}", urls, [ref], files)
    # package (repository webhook) and registry_package (GitHub App): same shape.
    action = _str(payload, "action")
    package = _get(payload, "package" if event == "package" else "registry_package")
    if action not in ("published", "updated"):
        return reply(summary=f"GitHub {event} {action or 'event'} ignored")
    version = _get(package, "package_version")
    if not isinstance(package, dict) or not isinstance(version, dict):
        raise WebhookError(400, f"invalid request body: {event} event without package_version")
    if _str(package, "package_type") not in ("CONTAINER", "docker"):
        return reply(summary=f"GitHub {event} of a {_str(package, 'package_type')} package ignored")
    media_type = _str(version, "container_metadata", "manifest", "config", "media_type")
    # GitHub sometimes sends "ghcr.io/owner/image:" (a trailing colon and no tag).
    url = _str(version, "package_url").removesuffix(":")
    tag = _str(version, "container_metadata", "tag", "name")
    urls = image_repo_urls(url, media_type)
    return refresh(f"GitHub {event} {tag or '(untagged)'} of {urls[0]}", urls, [tag])


# -- GitLab -----------------------------------------------------------------


def gitlab(delivery: Delivery, secret: str) -> Event:
    check_token(delivery.header("X-Gitlab-Token"), secret)
    event = delivery.header("X-Gitlab-Event")
    if event not in ("Push Hook", "Tag Push Hook", "Merge Request Hook"):
        raise WebhookError(400, f"event type {event!r} is not supported")
    payload = _obj(delivery.body)
    if event == "Merge Request Hook":
        return reply("merge request events are not acted upon", "GitLab merge request")
    repo = _get(payload, "repository", default={})
    urls = [
        normalize_git_url(_str(repo, "git_http_url")),
        normalize_git_url(_str(repo, "git_ssh_url")),
    ]
    ref = _str(payload, "ref")
    files = None
    if event == "Push Hook":
        commits = _list(payload, "commits")
        total = _get(payload, "total_commits_count", default=0)
        # GitLab truncates the commit list (20 by default): then paths cannot filter.
        if not (isinstance(total, int) and total > len(commits)):
            files = _changed_files(commits)
    return refresh(f"GitLab {event.lower()} to {ref} of {urls[0]}", urls, [ref], files)


# -- Bitbucket --------------------------------------------------------------


def bitbucket(delivery: Delivery, secret: str) -> Event:
    check_hub_signature(delivery.header("X-Hub-Signature"), delivery.body, secret)
    event = delivery.header("X-Event-Key")
    prs = ("pullrequest:fulfilled", "pullrequest:rejected", "pr:merged", "pr:declined")
    if event not in ("repo:push", "repo:refs_changed", *prs):
        raise WebhookError(400, f"event type {event!r} is not supported")
    payload = _obj(delivery.body)
    if event in prs:
        return reply("pull request events are not acted upon", f"Bitbucket {event}")
    if event == "repo:push":  # Bitbucket Cloud
        urls = [normalize_git_url(_str(payload, "repository", "links", "html", "href"))]
        refs = []
        for change in _list(payload, "push", "changes"):
            new = _get(change, "new", default={})
            name = _str(new, "name")
            if name:  # a deleted branch or tag has no "new"
                prefix = "refs/tags/" if _str(new, "type") == "tag" else "refs/heads/"
                refs.append(prefix + name)
    else:  # Bitbucket Data Center
        urls = [
            normalize_git_url(_str(link, "href"))
            for link in _list(payload, "repository", "links", "clone")
        ]
        refs = [_str(change, "ref", "id") for change in _list(payload, "changes")]
    return refresh(f"Bitbucket {event} of {', '.join(urls) or '(no repository)'}", urls, refs)


# -- Gitea ------------------------------------------------------------------


def gitea(delivery: Delivery, secret: str) -> Event:
    if delivery.header("X-Hub-Signature-256"):
        check_hub_signature(delivery.header("X-Hub-Signature-256"), delivery.body, secret)
    elif delivery.header("X-Gitea-Signature"):
        check_hex_hmac(delivery.header("X-Gitea-Signature"), delivery.body, secret)
    else:
        raise WebhookError(401, "missing signature")
    event = delivery.header("X-Gitea-Event")
    if event not in ("push", "pull_request"):
        raise WebhookError(501, f"event type {event!r} is not supported")
    payload = _obj(delivery.body)
    if event == "pull_request":
        return reply("pull request events are not acted upon", "Gitea pull_request")
    url = normalize_git_url(_str(payload, "repository", "clone_url"))
    commits = _list(payload, "commits")
    total = _get(payload, "total_commits", default=0)
    files = None if isinstance(total, int) and total > len(commits) else _changed_files(commits)
    ref = _str(payload, "ref")
    return refresh(f"Gitea push to {ref} of {url}", [url], [ref], files)


# -- Registries -------------------------------------------------------------


def dockerhub(delivery: Delivery, secret: str) -> Event:
    payload = _obj(delivery.body)
    tag = _str(payload, "push_data", "tag")
    urls = image_repo_urls(
        _str(payload, "repository", "repo_name"), _str(payload, "push_data", "media_type")
    )
    return refresh(f"Docker Hub push {tag} of {urls[0]}", urls, [tag])


def harbor(delivery: Delivery, secret: str) -> Event:
    check_token(delivery.header("Authorization"), secret, "missing authorization")
    payload = _obj(delivery.body)
    if _str(payload, "type") != "PUSH_ARTIFACT":
        raise WebhookError(400, "unsupported event type")
    resources = _list(payload, "event_data", "resources")
    urls, tags = [], []
    if resources:
        url = _str(resources[0], "resource_url")
        urls = [normalize_image_url(url), normalize_chart_url(url)]
        tags = [_str(r, "tag") for r in resources]
    return refresh(f"Harbor push of {urls[0] if urls else '(nothing)'}", urls, tags)


def quay(delivery: Delivery, secret: str) -> Event:
    payload = _obj(delivery.body)
    url = _str(payload, "docker_url")
    tags = [t for t in _list(payload, "updated_tags") if isinstance(t, str)]
    return refresh(
        f"Quay push of {url}", [normalize_image_url(url), normalize_chart_url(url)], tags
    )


def artifactory(delivery: Delivery, secret: str, virtual_repo: str = "") -> Event:
    check_hex_hmac(delivery.header("X-JFrog-Event-Auth"), delivery.body, secret)
    payload = _obj(delivery.body)
    if _str(payload, "event_type") != "pushed" or _str(payload, "domain") != "docker":
        raise WebhookError(501, "event type must be 'pushed' and domain must be 'docker'")
    image_type = _str(payload, "data", "image_type")
    if image_type not in ("docker", "oci"):
        raise WebhookError(501, f"unsupported image type {image_type!r}")
    origin = _str(payload, "jpd_origin")
    try:
        host = urlsplit(origin).netloc
    except ValueError:
        raise WebhookError(400, f"invalid value {origin!r} in payload's jpd_origin field") from None
    path = _str(payload, "data", "path")
    sections = path.split("/")
    if len(sections) < 2:
        raise WebhookError(400, f"invalid value {path!r} in payload's data.path field")
    # data.path is "<image>/<tag>/manifest.json": the repository is what comes before the tag.
    repo = "/".join([host, virtual_repo or _str(payload, "data", "repo_key"), *sections[:-2]])
    url = normalize_image_url(repo) if image_type == "docker" else normalize_chart_url(repo)
    tag = _str(payload, "data", "tag")
    return refresh(f"Artifactory push {tag} of {url}", [url], [tag])


def azure(delivery: Delivery, secret: str) -> Event:
    agent = delivery.header("User-Agent")
    if agent.startswith("AzureContainerRegistry"):
        payload = _obj(delivery.body)
        action = _str(payload, "action")
        if action == "ping":
            return reply(PING_MESSAGE, "Azure Container Registry ping")
        if action != "push":
            raise WebhookError(400, f"event type {action!r} is not supported")
        repo = f"{_str(payload, 'request', 'host')}/{_str(payload, 'target', 'repository')}"
        tag = _str(payload, "target", "tag")
        urls = image_repo_urls(repo, _str(payload, "target", "mediaType"))
        return refresh(f"Azure Container Registry push {tag} of {urls[0]}", urls, [tag])
    if agent.startswith("VSServices"):
        payload = _obj(delivery.body)
        event = _str(payload, "eventType")
        if event in ("git.pullrequest.merged", "git.pullrequest.updated"):
            return reply("pull request events are not acted upon", f"Azure DevOps {event}")
        if event != "git.push":
            raise WebhookError(400, f"event type {event!r} is not supported")
        url = normalize_git_url(_str(payload, "resource", "repository", "remoteUrl"))
        refs = [_str(r, "name") for r in _list(payload, "resource", "refUpdates")]
        return refresh(f"Azure DevOps push of {url}", [url], refs)
    raise WebhookError(400, "request does not appear to have originated from a supported service")


def generic(delivery: Delivery, secret: str) -> Event:
    """Kargo's generic receiver: the actions see the request (header(), headers(), body,
    params()) and the URL normalisers."""
    body = parse_json(delivery.body) if delivery.body else None
    lists = delivery.header_lists or {}
    env = {
        "normalizeGit": normalize_git_url,
        "normalizeImage": normalize_image_url,
        "normalizeChart": normalize_chart_url,
        "request": {
            "header": delivery.header,
            "headers": lambda name: list(lists.get(name.lower(), [])),
            "body": body,
            "params": lambda name: delivery.query.get(name, ""),
        },
    }
    return Event("generic", summary="generic delivery", env=env)


PARSERS: dict[str, Callable[[Delivery, str], Event]] = {
    "artifactory": artifactory,
    "azure": azure,
    "bitbucket": bitbucket,
    "dockerhub": dockerhub,
    "generic": generic,
    "gitea": gitea,
    "github": github,
    "gitlab": gitlab,
    "harbor": harbor,
    "quay": quay,
}


def parse_delivery(receiver: WebhookReceiver, delivery: Delivery, secret: str) -> Event:
    """Verify `delivery` for `receiver` and say what it asks for. Raises WebhookError."""
    kind = receiver_kind(receiver)
    if kind == "artifactory":
        return artifactory(delivery, secret, receiver.artifactory.virtualRepoName or "")
    return PARSERS[kind](delivery, secret)


# --------------------------------------------------------------------------
# Which Warehouses an event concerns
# --------------------------------------------------------------------------


def subscribed_urls(spec: WarehouseSpec) -> set[str]:
    """Kargo's WarehousesBySubscribedURLs index: every subscription's URL, normalised."""
    urls = set()
    for sub in spec.subscriptions:
        if sub.git is not None:
            urls.add(normalize_git_url(sub.git.repoURL))
        if sub.image is not None:
            urls.add(normalize_image_url(sub.image.repoURL))
        if sub.chart is not None:
            urls.add(normalize_chart_url(sub.chart.repoURL))
    return urls


def _git_matches_ref(git, ref: str) -> bool:
    """Kargo's commit selectors' MatchesRef."""
    if git.commitSelectionStrategy == "NewestFromBranch":
        if not ref.startswith("refs/heads/"):
            return False
        branch = ref.removeprefix("refs/heads/")
        # No branch: the default branch, taken to be main or master (as Kargo does).
        return branch in ("main", "master") if not git.branch else branch == git.branch
    if not ref.startswith("refs/tags/"):
        return False
    tag = ref.removeprefix("refs/tags/")
    if not tag_name_filter(git)(tag):
        return False
    if git.commitSelectionStrategy != "SemVer":
        return True
    version = parse_version(tag, strict=git.strictSemvers)
    return version is not None and Constraint(git.semverConstraint or "").allows(version)


def _image_matches_tag(image, tag: str) -> bool:
    """Kargo's image selectors' MatchesTag."""
    if image.imageSelectionStrategy == "Digest":
        return tag == image.constraint
    if not tag_name_filter(image)(tag):
        return False
    if image.imageSelectionStrategy != "SemVer":
        return True
    version = parse_version(tag, strict=image.strictSemvers)
    return version is not None and Constraint(image.constraint or "").allows(version)


def _chart_matches_version(chart, version: str) -> bool:
    parsed = parse_version(version, strict=False)
    return parsed is not None and Constraint(chart.semverConstraint or "").allows(parsed)


def should_refresh(spec: WarehouseSpec, event: Event) -> bool:
    """Whether a refresh event concerns a Warehouse (Kargo's refreshWarehouses and
    shouldRefresh): subscribed to one of the URLs and, when the event names refs, tags or
    versions, one of them is one the subscription would select (and for git, a changed file
    passes its path filters). Raises ValueError for an invalid filter in the spec."""
    for url in event.repo_urls:
        if url not in subscribed_urls(spec):
            continue
        if not event.qualifiers:
            return True
        for sub in spec.subscriptions:
            if sub.git is not None and normalize_git_url(sub.git.repoURL) == url:
                files = event.changed_files
                paths = paths_filter(sub.git.includePaths, sub.git.excludePaths)
                if any(_git_matches_ref(sub.git, q) for q in event.qualifiers) and (
                    not files or paths is None or paths.matches(list(files))
                ):
                    return True
            elif sub.image is not None and normalize_image_url(sub.image.repoURL) == url:
                if any(_image_matches_tag(sub.image, q) for q in event.qualifiers):
                    return True
            elif sub.chart is not None and normalize_chart_url(sub.chart.repoURL) == url:
                if any(_chart_matches_version(sub.chart, q) for q in event.qualifiers):
                    return True
    return False


# --------------------------------------------------------------------------
# The generic receiver's actions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A Warehouse as the generic receiver selects it."""

    id: int
    name: str
    labels: Mapping[str, str]
    spec: WarehouseSpec


def _as_string(template: str, env: dict, what: str) -> str:
    value = evaluate_template(template, env)
    if not isinstance(value, str):
        raise ValueError(f"{what} evaluated to {type(value).__name__}, not a string")
    return value


def _labels_match(selector, labels: Mapping[str, str], env: dict) -> bool:
    """metav1.LabelSelectorAsSelector(...).Matches, with the values templated as Kargo does."""
    for key, value in (selector.matchLabels or {}).items():
        if labels.get(key) != _as_string(value, env, f"labelSelector.matchLabels.{key}"):
            return False
    for req in selector.matchExpressions or []:
        values = [_as_string(v, env, f"labelSelector {req.key}") for v in req.values or []]
        if req.operator in ("In", "NotIn"):
            if (req.key in labels and labels[req.key] in values) != (req.operator == "In"):
                return False
        elif req.operator in ("Exists", "DoesNotExist"):
            if (req.key in labels) != (req.operator == "Exists"):
                return False
        else:
            raise ValueError(f"labelSelector {req.key!r}: unknown operator {req.operator!r}")
    return True


def _select(action: GenericWebhookAction, targets: list[Target], env: dict) -> list[Target]:
    chosen: dict[int, Target] = {}
    for criteria in action.targetSelectionCriteria or []:
        name = _as_string(criteria.name, env, "name") if criteria.name else None
        for target in targets:
            if name is not None and target.name != name:
                continue
            if criteria.labelSelector and not _labels_match(
                criteria.labelSelector, target.labels, env
            ):
                continue
            ok = True
            for index in (
                (criteria.indexSelector.matchIndices or []) if criteria.indexSelector else []
            ):
                if index.key != "subscribedURLs":
                    raise ValueError(f"index {index.key!r} does not select Warehouses")
                value = _as_string(index.value, env, "indexSelector value")
                if index.operator == "Equals":
                    ok = ok and value in subscribed_urls(target.spec)
                elif index.operator == "NotEquals":
                    ok = ok and value not in subscribed_urls(target.spec)
                else:
                    raise ValueError(f"unsupported operator {index.operator!r} in index selector")
            if ok:
                chosen[target.id] = target
    return sorted(chosen.values(), key=lambda t: t.name)


def plan_generic(actions: list[GenericWebhookAction], targets: list[Target], env: dict):
    """For each action: (result dict in Kargo's shape, without selectedTargets' success, and the
    Warehouses to refresh). Errors of one action are its result, not the delivery's."""
    planned = []
    for action in actions:
        result: dict[str, Any] = action.model_dump(exclude_none=True, by_alias=True)
        action_env = {**env, "params": dict(action.parameters or {})}
        try:
            met = True
            if action.whenExpression:
                met = evaluate(action.whenExpression, action_env)
                if not isinstance(met, bool):
                    raise ExpressionError(f"whenExpression evaluated to {met!r}, not a boolean")
        except (ExpressionError, ValueError, TypeError) as exc:
            result |= {
                "matchedWhenExpression": False,
                "result": "Error",
                "summary": f"Error evaluating whenExpression: {exc}",
            }
            planned.append((result, []))
            continue
        result["matchedWhenExpression"] = met
        if not met:
            result |= {"result": "NotApplicable", "summary": "Request did not match whenExpression"}
            planned.append((result, []))
            continue
        try:
            chosen = _select(action, targets, action_env)
        except (ExpressionError, ValueError, TypeError) as exc:
            result |= {
                "result": "Error",
                "summary": f"Error evaluating targetSelectionCriteria: {exc}",
            }
            planned.append((result, []))
            continue
        planned.append((result, chosen))
    return planned
