"""includePaths and excludePaths: which changed files make a commit count.

Kargo's path selectors (pkg/pattern ParsePathPattern): `glob:` is a bmatcuk/doublestar glob,
matched here with wcmatch; `regex:` and `regexp:` are unanchored Go regular expressions, run here
with RE2; anything else is a file or directory path.
"""

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import bracex
from wcmatch import fnmatch

from kargo.regex import RegexError, compile_regex

PathMatcher = Callable[[str], bool]

# doublestar semantics: "*" and "?" stay within one directory, "**" as a whole component spans any
# number of them, {a,b} alternatives, dot files are not special, case matters, "/" separates.
SEGMENT_FLAGS = fnmatch.DOTMATCH | fnmatch.CASE
# More {a,b} expansions than any sensible selector needs; a pattern needing more is refused.
GLOB_EXPANSION_LIMIT = 1000


@dataclass(frozen=True)
class PathsFilter:
    include: list[PathMatcher]
    exclude: list[PathMatcher]

    def matches(self, changed_paths: list[str]) -> bool:
        """Kargo's matchesPathsFilters: True if at least one changed path is included (no include
        selectors include everything) and not excluded."""
        for path in changed_paths:
            if self.include and not any(m(path) for m in self.include):
                continue
            if any(m(path) for m in self.exclude):
                continue
            return True
        return False


def paths_filter(
    include_paths: list[str] | None, exclude_paths: list[str] | None
) -> PathsFilter | None:
    """The filter for a subscription's selectors; None when it has none. Raises ValueError."""
    if not include_paths and not exclude_paths:
        return None
    return PathsFilter(
        include=[_matcher(s, "includePaths") for s in include_paths or []],
        exclude=[_matcher(s, "excludePaths") for s in exclude_paths or []],
    )


def _matcher(selector: str, field: str) -> PathMatcher:
    if selector.startswith("glob:"):
        try:
            patterns = bracex.expand(
                selector.removeprefix("glob:"), keep_escapes=True, limit=GLOB_EXPANSION_LIMIT
            )
        except bracex.ExpansionLimitException as exc:
            raise ValueError(f"invalid {field} selector {selector!r}: {exc}") from None
        globs = [tuple(pattern.split("/")) for pattern in patterns]
        return lambda path: any(_glob_match(g, tuple(path.split("/"))) for g in globs)
    if selector.startswith(("regex:", "regexp:")):
        try:
            return compile_regex(selector.split(":", 1)[1]).search
        except RegexError as exc:
            raise ValueError(f"invalid {field} selector {selector!r}: {exc}") from None
    return _base_dir_matcher(selector)


def _glob_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """doublestar's Match, one path component at a time: a "**" component spans zero or more
    components, any other is an fnmatch pattern (wcmatch) for exactly one. Matching whole
    components in a table keeps the work proportional to the pattern's and the path's lengths
    (a backtracking matcher takes minutes on `**/a/**/a/**/b` against a deep hostile path)."""
    # reachable[j]: the pattern so far matches the first j path components.
    reachable = [True] + [False] * len(path)
    for part in pattern:
        if part == "**":
            first = reachable.index(True) if True in reachable else len(reachable)
            reachable = [j >= first for j in range(len(reachable))]
        else:
            reachable = [False] + [
                reachable[j] and _segment_match(part, path[j]) for j in range(len(path))
            ]
        if not any(reachable):
            return False
    return reachable[-1]


@lru_cache(maxsize=4096)
def _segment_match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatch(name, pattern, flags=SEGMENT_FLAGS)


def _base_dir_matcher(base: str) -> PathMatcher:
    """A plain selector matches the path itself and anything below it."""

    def matches(path: str) -> bool:
        # Like Go's filepath.Rel, which Kargo uses: mixing absolute and relative paths is "no match".
        if posixpath.isabs(base) != posixpath.isabs(path):
            return False
        rel = posixpath.relpath(path, base or ".")
        return rel != ".." and not rel.startswith("../")

    return matches
