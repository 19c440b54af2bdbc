"""Semantic versions in tags, with Kargo's Masterminds/semver v3 semantics.

Versions are parsed and ordered by python-semver; constraints are evaluated by node-semver after
their Masterminds syntax is translated.
"""

import re

import nodesemver
import semver

from kargo.regex import compile_regex

# Masterminds keeps version numbers in uint64s: a bigger number is not a version.
_UINT64_MAX = 2**64 - 1

# The numeric core of a loose version, up to its pre-release or build metadata.
_LOOSE_CORE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?=$|[-+])")


def parse_version(tag: str, *, strict: bool) -> semver.Version | None:
    """Kargo's pkg/controller/semver Parse: the version a tag names, or None.

    One leading "v" is ignored. Strict (strictSemvers, Kargo's default) takes exactly
    MAJOR.MINOR.PATCH with optional pre-release and build metadata, no leading zeros. Loose is
    Masterminds' NewVersion: minor and patch may be missing ("v1" is 1.0.0, "1.2" is 1.2.0) and
    their leading zeros are dropped ("01.2.3" is 1.2.3, as Masterminds v3.4+ coerces them).
    """
    text = tag.removeprefix("v")
    if not strict:
        text = _LOOSE_CORE.sub(_without_leading_zeros, text)
    try:
        version = semver.Version.parse(text, optional_minor_and_patch=not strict)
    except ValueError:
        return None
    if max(version.major, version.minor, version.patch) > _UINT64_MAX:
        return None
    return version


def _without_leading_zeros(core: re.Match) -> str:
    return ".".join(number.lstrip("0") or "0" for number in core.groups() if number is not None)


_CONSTRAINT_OPS = r"!=|=>|=<|>=|<=|~>|=|>|<|~|\^"
_CONSTRAINT_VERSION = (
    r"v?[0-9xX*]+(?:\.[0-9xX*]+)?(?:\.[0-9xX*]+)?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_TERM = rf"(?:({_CONSTRAINT_OPS})?\s*({_CONSTRAINT_VERSION}))"
# RE2, as these run on user input: their ambiguous whitespace would keep a backtracking engine
# busy for minutes on a constraint padded with spaces.
_TERM_RE = compile_regex(_TERM)
_GROUP_RE = compile_regex(rf"^\s*{_TERM}\s*(?:(?:\s+|,\s*){_TERM}\s*)*$")
_HYPHEN_RE = compile_regex(rf"\s*({_CONSTRAINT_VERSION})\s+-\s+({_CONSTRAINT_VERSION})\s*")
# Masterminds spellings that node-semver lacks.
_OP_ALIASES = {"=>": ">=", "=<": "<=", "~>": "~"}


class Constraint:
    """A Masterminds/semver v3 constraint (semverConstraint), evaluated with node-semver.

    Syntax translation: "," and whitespace both mean AND, "||" means OR, "a - b" is an inclusive
    range, "=>", "=<" and "~>" are aliases, and "!=X" is its own range "<X || >X" that a version
    must satisfy as well. Pre-release rule (Masterminds, not node): a pre-release version can
    satisfy an AND group only if some term of that group itself has a pre-release; within such a
    group, versions are compared plainly. An empty constraint allows every version.

    Raises ValueError for a constraint Masterminds would not parse.
    """

    def __init__(self, text: str):
        self.text = text
        # Per OR group: whether it has a pre-release term, and the node ranges a version must
        # all satisfy.
        self.groups: list[tuple[bool, list[str]]] = []
        if not text.strip():
            return
        invalid = ValueError(f"invalid semverConstraint {text!r}")
        rewritten = _HYPHEN_RE.sub(lambda m: f" >= {m.group(1)}, <= {m.group(2)} ", text)
        for group in rewritten.split("||"):
            if not _GROUP_RE.match(group):
                raise invalid
            has_pre, terms, ranges = False, [], []
            for op, version in _TERM_RE.findall(group):
                version = version.removeprefix("v")
                has_pre = has_pre or "-" in version.split("+", 1)[0]
                if op == "!=":
                    ranges.append(f"<{version} || >{version}")  # node-semver has no "!="
                elif op in ("~", "~>") and version.split("-")[0].split("+")[0] == "0.0.0":
                    terms.append(f">={version}")  # Masterminds: ~0.0.0 is anything >= 0.0.0
                else:
                    terms.append(f"{_OP_ALIASES.get(op, op)}{version}")
            if terms:
                ranges.append(" ".join(terms))
            for node_range in ranges:
                try:
                    nodesemver.make_range(node_range, False)
                except ValueError:
                    raise invalid from None
            self.groups.append((has_pre, ranges))

    def allows(self, version: semver.Version) -> bool:
        if not self.groups:
            return True
        plain = str(version.replace(build=None))  # build metadata never affects a constraint
        for has_pre, ranges in self.groups:
            if version.prerelease and not has_pre:
                continue
            try:
                if all(
                    nodesemver.satisfies(plain, r, loose=False, include_prerelease=True)
                    for r in ranges
                ):
                    return True
            except ValueError:
                return False  # a version node-semver cannot represent
        return False
