"""Tag-name filters: allowTagsRegexes, ignoreTagsRegexes and the deprecated allowTags and
ignoreTags, as Kargo's tagBasedSelector.matchesTag applies them.

The patterns are Go regular expressions, run here with RE2 (as Go's regexp is): unanchored
searches in linear time, so no pattern can stall discovery however long a tag name is.
"""

from dataclasses import dataclass

from kargo.regex import RegexError, compile_regex
from kargo.specs import GitSubscription, ImageSubscription


@dataclass(frozen=True)
class TagNameFilter:
    allow: list  # compiled RE2 patterns; none means every tag is allowed
    ignore: list  # compiled RE2 patterns
    ignore_names: frozenset[str]  # deprecated ignoreTags: exact names, not patterns

    def __call__(self, tag: str) -> bool:
        """Ignore rules first, then allow rules."""
        if tag in self.ignore_names or any(r.search(tag) for r in self.ignore):
            return False
        return not self.allow or any(r.search(tag) for r in self.allow)


def tag_name_filter(sub: GitSubscription | ImageSubscription) -> TagNameFilter:
    """The subscription's tag-name rules. Raises ValueError for an invalid pattern."""
    allow = _compiled(sub.allowTagsRegexes or [], "allowTagsRegexes")
    # Deprecated: allowTags is a single regular expression.
    allow += _compiled([sub.allowTags] if sub.allowTags else [], "allowTags")
    ignore = _compiled(sub.ignoreTagsRegexes or [], "ignoreTagsRegexes")
    return TagNameFilter(allow, ignore, frozenset(sub.ignoreTags or []))


def _compiled(patterns: list[str], field: str) -> list:
    try:
        return [compile_regex(pattern) for pattern in patterns]
    except RegexError as exc:
        raise ValueError(f"{exc} in {field}") from None
