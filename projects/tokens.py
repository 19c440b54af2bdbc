"""API tokens: created by a project admin for one project and one role, sent as
`Authorization: Bearer <token>`, good only for the JSON API.

A token reads `kui_<key id>_<secret>`. The key id (8 random bytes, hex) finds the row; the secret
(32 random bytes) is checked against its stored SHA-256 digest in constant time. The secret itself
is never stored, so it is shown once, when the token is created. Every token expires; deleting it
revokes it at once.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.utils import timezone

from kargo.times import rfc3339

from .actions import record_event
from .models import ApiToken, Project, Role

PREFIX = "kui"
DEFAULT_LIFETIME = timedelta(days=90)
MAX_LIFETIME = timedelta(days=3650)
# Writing last_used_at on every request would make every API call a write; once a minute is
# enough to tell a token in use from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_EXPIRY = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# Compared against when the key id is unknown, so both failures cost the same.
_NO_DIGEST = hashlib.sha256(b"no such token").hexdigest()


class TokenError(ValueError):
    """The request's credentials are not a usable token (answered 401)."""


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_expiry(text: str) -> timedelta:
    """`30d`, `12h` or `90m`: how long a new token lives (at most ten years)."""
    match = _EXPIRY.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"invalid expiry {text!r}: give a number of days, hours or minutes (30d, 12h, 90m)"
        )
    lifetime = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"invalid expiry {text!r}: a token lives from 1m to {MAX_LIFETIME.days}d")
    return lifetime


def do_create_token(
    project: Project, name: str, role: str, actor: str, lifetime: timedelta = DEFAULT_LIFETIME
) -> tuple[ApiToken, str]:
    """A new token and its secret text, which nothing keeps: the caller shows it once."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid token name {name!r}: lowercase letters, digits and '-', at most 63 "
            "characters, starting and ending with a letter or digit"
        )
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(Role.values)}")
    if ApiToken.objects.filter(project=project, name=name).exists():
        raise ValueError(f"token {name!r} already exists in project {project.name}")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        project=project,
        name=name,
        role=role,
        key_id=key_id,
        digest=digest_of(secret),
        created_by=actor,
        expires_at=timezone.now() + lifetime,
    )
    record_event(
        project,
        "APITokenCreated",
        actor,
        f"API token {name} created for role {role}, expiring {rfc3339(token.expires_at)}",
        f"Token/{name}",
    )
    return token, f"{PREFIX}_{key_id}_{secret}"


def do_delete_token(token: ApiToken, actor: str) -> None:
    """Revoke: the next request with this token is refused."""
    token.delete()
    record_event(
        token.project,
        "APITokenDeleted",
        actor,
        f"API token {token.name} deleted",
        f"Token/{token.name}",
    )


def authenticate(header: str) -> ApiToken:
    """The live token an `Authorization` header carries; TokenError says why there is none."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise TokenError("unsupported Authorization header: send Authorization: Bearer <token>")
    prefix, _, rest = credentials.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    token = None
    if prefix == PREFIX and _KEY_ID.fullmatch(key_id) and 0 < len(secret) <= 100:
        token = ApiToken.objects.select_related("project").filter(key_id=key_id).first()
    matches = hmac.compare_digest(digest_of(secret), token.digest if token else _NO_DIGEST)
    if token is None or not matches:
        raise TokenError("invalid or revoked token")
    now = timezone.now()
    if token.expires_at <= now:
        raise TokenError(f"token {token.name!r} expired at {rfc3339(token.expires_at)}")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_info(token: ApiToken) -> dict:
    """What listing a token shows: never the secret, nor its digest."""
    return {
        "name": token.name,
        "role": token.role,
        "createdBy": token.created_by,
        "createdAt": rfc3339(token.created_at),
        "expiresAt": rfc3339(token.expires_at),
        "lastUsedAt": rfc3339(token.last_used_at) if token.last_used_at else None,
        "expired": token.expires_at <= timezone.now(),
    }
