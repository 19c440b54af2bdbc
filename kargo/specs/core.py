"""Kubernetes core (`apiVersion: v1`) objects a Kargo project holds beside its own kinds: credential
Secrets (labelled `kargo.akuity.io/cred-type`) and ConfigMaps, the data `secret()`, `configMap()`
and their shared forms read in expressions.

Only what Kargo uses is accepted. A Secret must carry the cred-type label; a repository credential
(`git`, `helm`, `image`) holds exactly `repoURL`, `repoURLIsRegex`, `username` and `password`
(Kargo's basic credentials: SSH keys, GitHub Apps and cloud identities are not supported here, and
are refused rather than stored unused); a `generic` one holds any keys. Values come from `data`
(base64, as Kubernetes stores them) or `stringData` (plain text, which wins on a clash, as the API
server merges them).

Every error names its field path and never quotes a value: a value may be a password.
"""

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from kargo.errors import FieldError, one_of
from kargo.regex import RegexError, compile_regex

CORE_API_VERSION = "v1"
CRED_TYPE_LABEL = "kargo.akuity.io/cred-type"
REPO_CRED_TYPES = ("git", "helm", "image")
CRED_TYPES = (*REPO_CRED_TYPES, "generic")
# Kargo's shared resources namespace (charts/kargo/values.yaml global.sharedResources.namespace):
# Secrets and ConfigMaps applied to it are shared by every project.
SHARED_NAMESPACE = "kargo-shared-resources"

REPO_KEYS = ("repoURL", "repoURLIsRegex", "username", "password")
# What `kargo get ... -o yaml` prints for every value, and Kargo's own redaction mark: applying an
# export back must not store the mask as a password.
MASKS = ("***", "*** REDACTED ***")
# The API server's limit on one Secret or ConfigMap.
MAX_DATA_BYTES = 1024 * 1024

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_METADATA_KEYS = {
    "name",
    "namespace",
    "labels",
    "annotations",
    # Written by the API server; an export carries them and applying it back ignores them.
    "creationTimestamp",
    "resourceVersion",
    "uid",
    "generation",
}
_TOP_KEYS = {
    "Secret": {"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"},
    "ConfigMap": {"apiVersion", "kind", "metadata", "data", "immutable"},
}
CORE_KINDS = tuple(_TOP_KEYS)
# The names `kargo get` / `delete` accept for each (kubectl's plural and short names, and
# Kargo's CLI nouns for credentials).
KIND_ALIASES = {
    "secret": "Secret",
    "secrets": "Secret",
    "credential": "Secret",
    "credentials": "Secret",
    "creds": "Secret",
    "repo-credentials": "Secret",
    "generic-credentials": "Secret",
    "configmap": "ConfigMap",
    "configmaps": "ConfigMap",
    "cm": "ConfigMap",
}


@dataclass
class CoreObject:
    """A valid Secret or ConfigMap: its data decoded to text."""

    kind: str
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)

    @property
    def cred_type(self) -> str:
        return self.labels.get(CRED_TYPE_LABEL, "")


def is_core(doc: Any) -> bool:
    """A document this module validates (apiVersion v1)."""
    return isinstance(doc, dict) and doc.get("apiVersion") == CORE_API_VERSION


def core_kind(text: str) -> str | None:
    """`Secret` or `ConfigMap` for the names `kargo get` accepts, else None."""
    return KIND_ALIASES.get(text.lower())


def valid_name(name: str) -> bool:
    return isinstance(name, str) and len(name) <= 253 and bool(_NAME.fullmatch(name))


def _string_map(value: Any, path: str, errors: list[FieldError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(FieldError(path, "must be a map of strings"))
        return {}
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            errors.append(FieldError(f"{path}.{key}", "must be a string"))
            continue
        out[key] = item
    return out


def _data_keys(data: dict[str, str], path: str, errors: list[FieldError]) -> None:
    for key in data:
        if len(key) > 253 or not _KEY.fullmatch(key):
            errors.append(
                FieldError(f"{path}.{key}", "key must consist of letters, digits, '-', '_' or '.'")
            )


def check_repo_credential(data: dict[str, str], where: str = "data") -> list[FieldError]:
    """The rules of a repository credential's data (also for the CLI and the settings page)."""
    errors = []
    for key in data:
        if key not in REPO_KEYS:
            errors.append(
                FieldError(
                    f"{where}.{key}",
                    "not supported in a repository credential: "
                    f"only {', '.join(REPO_KEYS)} (SSH keys, GitHub Apps and cloud "
                    "identities are not supported by this server)",
                )
            )
    for key in ("repoURL", "username", "password"):
        if not data.get(key):
            errors.append(FieldError(f"{where}.{key}", "required in a repository credential"))
    regex = data.get("repoURLIsRegex", "false")
    if regex not in ("true", "false"):
        errors.append(FieldError(f"{where}.repoURLIsRegex", one_of(["true", "false"])))
    elif regex == "true" and data.get("repoURL"):
        try:
            compile_regex(data["repoURL"])
        except RegexError as exc:
            errors.append(FieldError(f"{where}.repoURL", str(exc)))
    return errors


def _check_masks(data: dict[str, str], where: str) -> list[FieldError]:
    return [
        FieldError(
            f"{where}.{key}",
            "holds the mask an export prints, not a value: give the real value",
        )
        for key, value in data.items()
        if value.strip() in MASKS
    ]


def validate_core(doc: Any) -> tuple[CoreObject | None, list[FieldError]]:
    """Validate a v1 Secret or ConfigMap; (the object, []) or (None, every error)."""
    errors: list[FieldError] = []
    if not is_core(doc):
        return None, [FieldError("apiVersion", "must be v1")]
    kind = doc.get("kind")
    if kind not in CORE_KINDS:
        return None, [FieldError("kind", f"{one_of(list(CORE_KINDS))} for apiVersion v1")]
    for key in doc:
        if key not in _TOP_KEYS[kind]:
            errors.append(FieldError(str(key), "unknown field"))
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        return None, [*errors, FieldError("metadata", "field required")]
    for key in meta:
        if key not in _METADATA_KEYS:
            errors.append(FieldError(f"metadata.{key}", "unknown field"))
    name = meta.get("name")
    if name is None:
        errors.append(FieldError("metadata.name", "field required"))
    elif not valid_name(name):
        errors.append(
            FieldError(
                "metadata.name",
                "must be a lowercase RFC 1123 subdomain: letters, digits, '-' and '.', "
                "at most 253 characters",
            )
        )
    namespace = meta.get("namespace") or ""
    if not isinstance(namespace, str):
        errors.append(FieldError("metadata.namespace", "must be a string"))
        namespace = ""
    labels = _string_map(meta.get("labels"), "metadata.labels", errors)
    annotations = _string_map(meta.get("annotations"), "metadata.annotations", errors)
    if "immutable" in doc and not isinstance(doc["immutable"], bool):
        errors.append(FieldError("immutable", "must be a boolean"))
    if kind == "ConfigMap":
        data = _string_map(doc.get("data"), "data", errors)
        _data_keys(data, "data", errors)
    else:
        data = _secret_data(doc, labels, errors)
    if sum(len(k) + len(v.encode()) for k, v in data.items()) > MAX_DATA_BYTES:
        errors.append(FieldError("data", f"larger than {MAX_DATA_BYTES} bytes"))
    if errors:
        return None, errors
    return CoreObject(kind, name, namespace, labels, annotations, data), []


def _secret_data(doc: dict, labels: dict[str, str], errors: list[FieldError]) -> dict[str, str]:
    if doc.get("type", "Opaque") != "Opaque":
        errors.append(FieldError("type", "must be Opaque (Kargo's credentials are Opaque Secrets)"))
    cred_type = labels.get(CRED_TYPE_LABEL)
    if cred_type is None:
        errors.append(
            FieldError(
                f"metadata.labels.{CRED_TYPE_LABEL}",
                f"required: this server stores only Kargo credentials ({', '.join(CRED_TYPES)})",
            )
        )
    elif cred_type not in CRED_TYPES:
        errors.append(FieldError(f"metadata.labels.{CRED_TYPE_LABEL}", one_of(list(CRED_TYPES))))
    encoded = _string_map(doc.get("data"), "data", errors)
    data = {}
    for key, value in encoded.items():
        try:
            data[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            errors.append(FieldError(f"data.{key}", "must be base64 of UTF-8 text"))
    plain = _string_map(doc.get("stringData"), "stringData", errors)
    data.update(plain)
    _data_keys(data, "data", errors)
    errors += _check_masks(data, "data")
    if cred_type in REPO_CRED_TYPES:
        errors += check_repo_credential(data)
    return data
