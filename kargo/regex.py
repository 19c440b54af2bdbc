"""User-supplied regular expressions, compiled with RE2: the syntax Go's regexp (and so Kargo)
accepts, in linear time, so a pattern cannot run away however hostile its input."""

from functools import lru_cache

import re2

# Enough for any sensible tag or path filter; a pattern needing more is refused, not run.
MAX_PATTERN = 4096
MAX_MEMORY = 8 << 20


class RegexError(ValueError):
    pass


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.log_errors = False  # a bad user pattern is the user's error, not a server log line
    return options


@lru_cache(maxsize=512)
def compile_regex(pattern: str):
    """A compiled RE2 pattern with `search`, `match` and `fullmatch`, as Python's re has."""
    if not isinstance(pattern, str):
        raise RegexError(f"a regular expression must be a string, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"regular expression is longer than {MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexError(f"invalid regular expression {pattern!r}: {detail}") from None
