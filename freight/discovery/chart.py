"""Chart subscriptions: the versions of a Helm chart a Warehouse selects, highest first, the way
Kargo's chart selectors do it (pkg/helm/chart/*_selector.go; facts only, not code).

- Classic repositories (http:// or https://): the repository's index.yaml, the entries of the
  chart named by `name` (required); versions are read loosely (Masterminds' NewVersion: "v1",
  "1.2" count).
- OCI repositories (oci://): the repository's tags through the registry client; `name` is
  forbidden (the repository is the chart); a tag counts only as a strict semantic version, with
  "_" standing for "+" (OCI tags cannot hold "+", so Helm writes build metadata with "_").

Versions allowed by `semverConstraint`, highest first (equal versions in reverse lexical order),
at most `discoveryLimit`.
"""

import base64
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from kargo.specs import ChartSubscription
from kargo.versions import Constraint, parse_version
from projects.outbound import OutboundError, Request, send

from .base import DiscoveryError
from .registry import RegistryClient, parse_image_repo

INDEX_MAX_BYTES = 64 * 1024 * 1024  # the biggest public index.yaml files are tens of megabytes
TIMEOUT = 60.0

# The base loader keeps every scalar a string, as Kargo's Go decoder reads `version` into a
# string ("1.10" stays "1.10", not the float 1.1), and builds no objects. libyaml's, when PyYAML
# was built with it: index files are big.
_Loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


@dataclass
class DiscoveredChart:
    """Kargo's ChartDiscoveryResult, less the subscription name."""

    repo_url: str
    name: str
    semver_constraint: str
    versions: list[str]

    def as_dict(self) -> dict:
        data: dict = {"repoURL": self.repo_url}
        if self.name:
            data["name"] = self.name
        if self.semver_constraint:
            data["semverConstraint"] = self.semver_constraint
        data["versions"] = self.versions
        return data


def order_versions(candidates: list[str], constraint: Constraint, *, strict: bool) -> list[str]:
    """Versions allowed by the constraint, highest first; equal versions (1.0 and 1.0.0) in
    reverse lexical order of how they were written."""
    versions = {}
    for text in candidates:
        if strict and text.startswith("v"):
            continue  # Masterminds' StrictNewVersion takes no "v"
        version = parse_version(text, strict=strict)
        if version is not None and constraint.allows(version):
            versions[text] = version
    return sorted(versions, key=lambda text: (versions[text], text), reverse=True)


def discover_chart(
    sub: ChartSubscription,
    *,
    credentials: tuple[str, str] | None = None,
    client: RegistryClient | None = None,
) -> DiscoveredChart:
    """Discover the versions of a chart subscription, best first. Raises DiscoveryError naming
    the repository and why."""
    try:
        constraint = Constraint(sub.semverConstraint or "")
    except ValueError as exc:
        raise DiscoveryError(f"{exc} (chart repository {sub.repoURL})") from None
    scheme = urlsplit(sub.repoURL).scheme.lower()
    if scheme == "oci":
        if sub.name:
            raise DiscoveryError(
                f"name must be empty for an oci:// chart repository ({sub.repoURL})"
            )
        if client is None:
            client = RegistryClient(
                parse_image_repo(sub.repoURL[len("oci://") :]),
                sub.repoURL,
                credentials=credentials,
                insecure=bool(sub.insecureSkipTLSVerify),
            )
        tags = [tag.replace("_", "+") for tag in client.list_tags()]
        versions = order_versions(tags, constraint, strict=True)
    elif scheme in ("http", "https"):
        if not sub.name:
            raise DiscoveryError(
                f"name is required for an http(s) chart repository ({sub.repoURL})"
            )
        entries = _index_entries(sub, credentials)
        versions = order_versions(entries.get(sub.name, []), constraint, strict=False)
    else:
        raise DiscoveryError(f"chart repository URL {sub.repoURL!r} is not http(s):// or oci://")
    return DiscoveredChart(
        sub.repoURL, sub.name or "", sub.semverConstraint or "", versions[: sub.discoveryLimit]
    )


def _index_entries(
    sub: ChartSubscription, credentials: tuple[str, str] | None
) -> dict[str, list[str]]:
    """The versions of every chart in a classic repository's index.yaml."""
    url = sub.repoURL.rstrip("/") + "/index.yaml"
    shown = f"chart repository {sub.repoURL}"
    headers = {"Accept": "application/x-yaml, text/yaml, */*"}
    if credentials:
        headers["Authorization"] = _basic(credentials)
    try:
        answer = send(
            Request(
                "GET",
                url,
                headers=headers,
                timeout=TIMEOUT,
                insecure=bool(sub.insecureSkipTLSVerify),
                max_bytes=INDEX_MAX_BYTES,
            )
        )
    except (OutboundError, ValueError) as exc:
        raise DiscoveryError(f"{shown}: {exc}") from None
    if answer.status != 200:
        reason = {401: " (credentials are needed or were refused)", 404: " (no index.yaml)"}
        raise DiscoveryError(
            f"{shown} answered HTTP {answer.status}{reason.get(answer.status, '')} "
            "for its index.yaml"
        )
    try:
        index = yaml.load(answer.body, Loader=_Loader)  # noqa: S506 - builds strings only
    except yaml.YAMLError as exc:
        raise DiscoveryError(f"{shown}: index.yaml is not valid YAML: {str(exc)[:200]}") from None
    entries = index.get("entries") if isinstance(index, dict) else None
    if not isinstance(entries, dict):
        if isinstance(index, dict) and "entries" not in index:
            return {}
        raise DiscoveryError(f"{shown}: index.yaml has no map of entries")
    versions: dict[str, list[str]] = {}
    for name, charts in entries.items():
        if isinstance(charts, list):
            versions[str(name)] = [
                str(chart["version"])
                for chart in charts
                if isinstance(chart, dict) and isinstance(chart.get("version"), str)
            ]
    return versions


def _basic(credentials: tuple[str, str]) -> str:
    user, password = credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
