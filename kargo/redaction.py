"""One rule for hiding credentials in URLs, for steps, discovery, pages, logs and records.

Two things are masked as `***`:
- the user info of a URL, `scheme://user[:password]@`, whatever it holds;
- the value of a query (or fragment) parameter whose name says it is a secret: `token`, `key`,
  `password`, `passwd`, `pwd`, `secret`, `sig`, `signature`, `auth`, `credential(s)`, `apikey`,
  compared without case, alone or as the last word of a name (`access_token`, `private_token`,
  `client_secret`, `api_key`, `X-Amz-Signature`, `X-Amz-Security-Token`, `X-Goog-Credential`).

The pattern runs under RE2, so masking takes time linear in the text, however long or hostile:
Python's backtracking engine took seconds on 60k characters and minutes on 5 MB.
"""

import re2

from .regex import MAX_MEMORY

# Python's `\s` for str (every character str.isspace() accepts); RE2's `\s` is ASCII only,
# and a URL ends at the same whitespace as it did before.
_SPACE = "".join(f"\\x{{{code:x}}}" for code in range(0x110000) if chr(code).isspace())

_SECRET_WORDS = (
    "token",
    "key",
    "apikey",
    "password",
    "passwd",
    "pwd",
    "secret",
    "sig",
    "signature",
    "auth",
    "credential",
    "credentials",
)

_PATTERN = (
    # scheme://user[:password]@ — the part of a URL that must never reach a page, a log or an export.
    rf"([A-Za-z][A-Za-z0-9+.-]*://)[^/{_SPACE}]+@"
    # ?access_token=… or &X-Amz-Signature=… or #token=…: the value, up to the next parameter.
    rf"|([?&#;](?i:(?:[A-Za-z0-9]+[_.-])*(?:{'|'.join(_SECRET_WORDS)}))=)[^&#;\"'<>{_SPACE}]+"
)


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    return options


_SECRETS = re2.compile(_PATTERN, _options())


def _mask(match) -> str:
    scheme, parameter = match.group(1), match.group(2)
    return f"{scheme}***@" if scheme is not None else f"{parameter}***"


def redact(text: str) -> str:
    """Mask user info (tokens, passwords) and secret query parameters in every URL in `text`."""
    if "://" not in text and "=" not in text:
        return text  # nothing to mask, and the common case: no need to run the pattern
    return _SECRETS.sub(_mask, text)


def redact_values(value):
    """`redact` applied to every string in a JSON-like value (dicts, lists)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_values(v) for v in value]
    return value


def hide_paths(text: str, *places) -> str:
    """`text` with the server's own directories (work directories, the data directory) replaced,
    so a message names a file as the user knows it, never where the server keeps it."""
    for place, shown in places:
        text = text.replace(f"{place}/", f"{shown}/" if shown != "." else "").replace(
            str(place), shown
        )
    return text
