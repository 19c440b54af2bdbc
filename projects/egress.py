"""The one egress policy: every outbound connection the server makes on a user's behalf (git,
kustomize's remote resources, and registries, chart repositories, webhooks and HTTP steps as they
arrive) is checked here first.

- KARGO_EGRESS_ALLOW: when set, only these hosts (`git.example.com`, `*.example.com`) and
  networks (`10.0.0.0/8`) may be reached.
- KARGO_EGRESS_DENY: hosts and networks never reached.
- Loopback, link-local (which holds the cloud metadata address) and unspecified addresses are
  refused unless KARGO_EGRESS_ALLOW_LOCAL is set (demo mode sets it) or the allow list names them.

Every refusal has the same text, so an error never tells a user which internal addresses exist
or answer.
"""

import ipaddress
import socket
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from django.conf import settings

from kargo.remotes import parse_remote

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",  # loopback
        "::1/128",
        "169.254.0.0/16",  # link-local, including the metadata service 169.254.169.254
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "0.0.0.0/8",  # "this host"
        "::/128",
    )
)


class OutboundNotAllowed(ValueError):
    pass


@dataclass(frozen=True)
class Rules:
    hosts: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    def matches(self, host: str, addresses: list[IPAddress]) -> bool:
        if any(fnmatchcase(host, pattern) for pattern in self.hosts):
            return True
        return any(address in network for address in addresses for network in self.networks)


@lru_cache(maxsize=8)
def _rules(entries: tuple[str, ...]) -> Rules:
    hosts, networks = [], []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.append(entry.lower())
    return Rules(tuple(hosts), tuple(networks))


def _addresses(host: str) -> list[IPAddress]:
    """The addresses a connection to `host` could reach (IPv4-mapped IPv6 unwrapped). A name that
    does not resolve gives none: the tool will fail to connect on its own."""
    try:
        found = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return []
        found = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    return [getattr(a, "ipv4_mapped", None) or a for a in found]


def check_outbound(url: str) -> None:
    """Raise OutboundNotAllowed unless the policy lets the server connect where `url` points.
    Local paths (file://) are not this policy's concern: see projects.repos."""
    remote = parse_remote(url)
    if remote.scheme == "file":
        return
    host = remote.host.rstrip(".")
    refused = OutboundNotAllowed(
        f"connections to {host or url!r} are not allowed by this server's egress policy"
    )
    if not host:
        raise refused
    addresses = _addresses(host)
    allow = _rules(tuple(settings.EGRESS_ALLOW))
    deny = _rules(tuple(settings.EGRESS_DENY))
    if deny.matches(host, addresses):
        raise refused
    if settings.EGRESS_ALLOW:
        if not allow.matches(host, addresses):
            raise refused
        return
    local = [a for a in addresses if any(a in n for n in LOCAL_NETWORKS)]
    if local and not settings.EGRESS_ALLOW_LOCAL:
        raise refused
