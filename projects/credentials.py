"""The credentials store: Kargo's credential Secrets and ConfigMaps, kept encrypted (Secrets) and
found the way Kargo finds them.

Encryption: every Secret's data is one Fernet token (cryptography's MultiFernet: AES-128-CBC with
HMAC-SHA256, a maintained and audited construction, with key rotation built in). The keys are
settings.CREDENTIALS_KEYS (KARGO_CREDENTIALS_KEYS: the first encrypts, all decrypt), or else one
key derived from SECRET_KEY with HKDF, so the embedded mode needs no setup.

Matching (Kargo's pkg/credentials/kubernetes/database.go and its docs): by type and repository
URL, in the project first and then among the shared credentials (Kargo's kargo-shared-resources
namespace); within each, exact matches of the normalised URL first, then regular expressions
(RE2, searched in the URL as given and normalised, as Go's MatchString does), each in name order.
URLs are normalised per type as Kargo does: git (urls.NormalizeGit), image (NormalizeImage), helm
(NormalizeChart). A credential is never handed to a plain http:// URL off this machine unless
KARGO_ALLOW_CREDENTIALS_OVER_HTTP is set (Kargo's ALLOW_CREDENTIALS_OVER_HTTP).

Values leave this module only to the code that uses them (a git process's environment, a request
header, an expression): never to a page, an export, a log line or an error message.

The API the rest of the project uses:
- lookup(project_id, cred_type, repo_url) -> (username, password) | None
- generic(project_id | None, name) -> data | None (a generic Secret; None project = shared)
- config_map(project_id | None, name) -> data | None
- git_env(project_id, repo_url) -> the environment a git process needs to authenticate
- expression_functions(project_id, revealed) -> secret(), sharedSecret(), configMap(),
  sharedConfigMap() for promotion expressions, and mask(value, revealed) for what is shown.
"""

import base64
import ipaddress
import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db.models import Q

from kargo import runner
from kargo.freight_ids import _normalize_image, normalize_chart_url, normalize_git_url
from kargo.redaction import redact
from kargo.regex import RegexError, compile_regex
from kargo.specs.core import CRED_TYPE_LABEL, REPO_CRED_TYPES, SHARED_NAMESPACE
from kargo.times import rfc3339

from .models import ConfigMap, Credential, CredType

MASK = "***"
# The helper git runs for a username or password (GIT_ASKPASS): it prints what the two variables
# below hold, which are set only in the environment of the one git process that needs them.
ASKPASS = Path(__file__).resolve().with_name("git_askpass.sh")
USERNAME_VAR = "KARGO_GIT_USERNAME"
PASSWORD_VAR = "KARGO_GIT_PASSWORD"


class CredentialsError(ValueError):
    """A stored credential cannot be used (its keys are gone); never carries a value."""


# ---------------------------------------------------------------- encryption


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"kargo_ui credentials store",
            info=b"fernet key v1",
        ).derive(secret_key.encode())
        keys = (base64.urlsafe_b64encode(derived).decode(),)
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIALS_KEYS), settings.SECRET_KEY)


def seal(data: dict[str, str]) -> str:
    return fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def unseal(credential: Credential) -> dict[str, str]:
    """The credential's data. CredentialsError when no configured key opens it."""
    try:
        return json.loads(fernet().decrypt(credential.sealed.encode()))
    except InvalidToken:
        raise CredentialsError(
            f"credential {credential.name!r} cannot be decrypted with the configured keys "
            "(KARGO_CREDENTIALS_KEYS, or SECRET_KEY when no keys are set, changed since it "
            "was stored)"
        ) from None


def resealed(credential: Credential) -> str:
    """The credential's token re-encrypted with the first key (rotation)."""
    try:
        return fernet().rotate(credential.sealed.encode()).decode()
    except InvalidToken:
        unseal(credential)  # raises the CredentialsError naming it
        raise


# ---------------------------------------------------------------- matching


def normalize(cred_type: str, url: str) -> str:
    """A repository URL as Kargo compares it for this credential type (normalizeRepoURL)."""
    if cred_type == CredType.GIT:
        return normalize_git_url(url)
    if cred_type == CredType.IMAGE:
        return _normalize_image(url)
    if cred_type == CredType.HELM:
        return normalize_chart_url(url)
    return url


def _over_http_allowed(repo_url: str) -> bool:
    if not repo_url.startswith("http://") or settings.CREDENTIALS_OVER_HTTP:
        return True
    try:
        host = urlsplit(repo_url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _scope(project_id: int | None) -> Q:
    return Q(project_id=project_id) if project_id is not None else Q(project__isnull=True)


def matching(project_id: int | None, cred_type: str, repo_url: str) -> Credential | None:
    """The credential Kargo would use for `repo_url`, without opening it."""
    if cred_type not in REPO_CRED_TYPES:
        raise ValueError(f"unknown credential type {cred_type!r}; use one of git, helm, image")
    if not repo_url or not _over_http_allowed(repo_url):
        return None
    rows = list(
        Credential.objects.filter(
            (_scope(project_id) | _scope(None)) if project_id is not None else _scope(None),
            cred_type=cred_type,
        )
        .only("id", "project_id", "name", "repo_url", "repo_url_is_regex", "sealed")
        .order_by("name")
    )
    normalized = normalize(cred_type, repo_url)
    scopes = [project_id, None] if project_id is not None else [None]
    for scope in scopes:
        here = [row for row in rows if row.project_id == scope]
        for row in here:
            if not row.repo_url_is_regex and normalize(cred_type, row.repo_url) == normalized:
                return row
        for row in here:
            if not row.repo_url_is_regex:
                continue
            try:
                pattern = compile_regex(row.repo_url)
            except RegexError:
                continue  # refused at apply; one stored before a rule change is skipped, as Kargo does
            if pattern.search(repo_url) or pattern.search(normalized):
                return row
    return None


def lookup(project_id: int, cred_type: str, repo_url: str) -> tuple[str, str] | None:
    """(username, password) for a repository of `cred_type` (git, helm, image) at `repo_url`,
    from the project's credentials or else the shared ones; None when none matches. Like
    Kargo's basic provider, a match without both a username and a password gives None."""
    row = matching(project_id, cred_type, repo_url)
    if row is None:
        return None
    data = unseal(row)
    username, password = data.get("username", ""), data.get("password", "")
    return (username, password) if username and password else None


def generic(project_id: int | None, name: str) -> dict[str, str] | None:
    """The data of the generic Secret `name` of the project (None: a shared one), or None."""
    row = Credential.objects.filter(
        _scope(project_id), name=name, cred_type=CredType.GENERIC
    ).first()
    return unseal(row) if row else None


def config_map(project_id: int | None, name: str) -> dict[str, str] | None:
    """The data of the ConfigMap `name` of the project (None: a shared one), or None."""
    row = ConfigMap.objects.filter(_scope(project_id), name=name).only("data").first()
    return dict(row.data) if row else None


def has_credentials(project_id: int | None, cred_type: str) -> bool:
    """Whether any credential of the type could match for the project (its own or shared): a
    cheap check before finding a URL to match."""
    scope = (_scope(project_id) | _scope(None)) if project_id is not None else _scope(None)
    return Credential.objects.filter(scope, cred_type=cred_type).exists()


def git_env(project_id: int | None, repo_url: str) -> dict[str, str]:
    """What the environment of a git process talking to `repo_url` needs to authenticate with
    the stored credential ({} when there is none): GIT_ASKPASS pointing at the helper that
    prints the two values from its own environment, so they never appear in a URL, a command
    line or a repository's config; and an empty credential.helper list, so no helper an operator
    configured can store them."""
    found = (
        lookup(project_id, CredType.GIT, repo_url)
        if project_id is not None
        else _shared_lookup(repo_url)
    )
    if found is None:
        return {}
    base = runner.tool_env()
    count = int(base.get("GIT_CONFIG_COUNT") or 0)
    return {
        "GIT_ASKPASS": str(ASKPASS),
        USERNAME_VAR: found[0],
        PASSWORD_VAR: found[1],
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "credential.helper",
        f"GIT_CONFIG_VALUE_{count}": "",
    }


def _shared_lookup(repo_url: str) -> tuple[str, str] | None:
    row = matching(None, CredType.GIT, repo_url)
    if row is None:
        return None
    data = unseal(row)
    username, password = data.get("username", ""), data.get("password", "")
    return (username, password) if username and password else None


# ---------------------------------------------------------------- expressions


def expression_functions(project_id: int, revealed: set[str]) -> dict[str, Callable]:
    """Kargo's secret(), sharedSecret(), configMap() and sharedConfigMap() for promotion
    expressions, bound to the project. Each returns the data map; a missing one is an error
    naming it (Kargo returns an empty map, which only moves the failure to a confusing later
    place). Every secret value handed out is added to `revealed`, so what the engine shows of a
    step (its evaluated config, outputs, messages) can be masked with mask()."""

    def name_of(function: str, args: tuple) -> str:
        if len(args) != 1:
            raise ValueError(f"{function}() takes one argument, the name; got {len(args)}")
        if not isinstance(args[0], str) or not args[0]:
            raise ValueError(f"{function}() takes a non-empty string, the name")
        return args[0]

    def secret(*args):
        name = name_of("secret", args)
        # secret() reads any of the project's Secrets (repository credentials too), as Kargo's
        # does for the project's own namespace.
        row = Credential.objects.filter(project_id=project_id, name=name).first()
        if row is None:
            raise ValueError(f"secret {name!r} not found in this project")
        data = unseal(row)
        revealed.update(v for v in data.values() if v)
        return data

    def shared_secret(*args):
        name = name_of("sharedSecret", args)
        # Shared repository credentials are usable by every project, but only generic ones can
        # be read (Kargo's rule: operators share credentials without exposing them).
        data = generic(None, name)
        if data is None:
            raise ValueError(f"shared generic secret {name!r} not found")
        revealed.update(v for v in data.values() if v)
        return data

    def config_map_fn(*args):
        name = name_of("configMap", args)
        data = config_map(project_id, name)
        if data is None:
            raise ValueError(f"configmap {name!r} not found in this project")
        return data

    def shared_config_map(*args):
        name = name_of("sharedConfigMap", args)
        data = config_map(None, name)
        if data is None:
            raise ValueError(f"shared configmap {name!r} not found")
        return data

    return {
        "secret": secret,
        "sharedSecret": shared_secret,
        "configMap": config_map_fn,
        "sharedConfigMap": shared_config_map,
    }


def mask(value, revealed: Iterable[str]):
    """`value` (text, or JSON-like data) with every revealed secret value replaced by ***."""
    secrets = sorted({s for s in revealed if s}, key=len, reverse=True)
    if not secrets:
        return value

    def walk(item):
        if isinstance(item, str):
            for secret in secrets:
                item = item.replace(secret, MASK)
            return item
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(value)


# ---------------------------------------------------------------- listings and exports


def namespace_of(row: Credential | ConfigMap) -> str:
    return row.project.name if row.project_id else SHARED_NAMESPACE


def credential_info(row: Credential) -> dict:
    """What a listing shows of a credential: never a value (every key shows ***)."""
    return {
        "name": row.name,
        "namespace": namespace_of(row),
        "shared": row.project_id is None,
        "type": row.cred_type,
        "repoURL": redact(row.repo_url),
        "repoURLIsRegex": row.repo_url_is_regex,
        "data": {key: MASK for key in row.keys},
        "createdAt": rfc3339(row.created_at),
        "updatedAt": rfc3339(row.updated_at),
    }


def _metadata(row: Credential | ConfigMap) -> dict:
    meta: dict = {"name": row.name, "namespace": namespace_of(row)}
    if row.labels:
        meta["labels"] = row.labels
    if row.annotations:
        meta["annotations"] = row.annotations
    meta["creationTimestamp"] = rfc3339(row.created_at)
    return meta


def secret_manifest(row: Credential) -> dict:
    """The Secret as `kargo get secret -o yaml` prints it: every value ***, as stringData (the
    mask is no base64), so the export can be read but never applied back as a credential."""
    meta = _metadata(row)
    meta.setdefault("labels", {})[CRED_TYPE_LABEL] = row.cred_type
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": {key: MASK for key in row.keys},
    }


def config_map_manifest(row: ConfigMap) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(row), "data": row.data}


def credentials_of(project_id: int | None):
    return Credential.objects.filter(_scope(project_id)).select_related("project").order_by("name")


def config_maps_of(project_id: int | None):
    return ConfigMap.objects.filter(_scope(project_id)).select_related("project").order_by("name")
