"""One rule for hiding credentials in URLs, for steps, discovery, pages, logs and records."""

import re

# scheme://user[:password]@ — the part of a URL that must never reach a page, a log or an export.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s]+@")


def redact(text: str) -> str:
    """Mask user info (tokens, passwords) in every URL inside `text`."""
    return _USERINFO.sub(r"\1***@", text)


def redact_values(value):
    """`redact` applied to every string in a JSON-like value (dicts, lists)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_values(v) for v in value]
    return value
