"""YAML read as the Kubernetes API server reads it (sigs.k8s.io/yaml): YAML 1.1 scalars, except
that timestamps stay the strings they were written as, and non-string map keys become strings
(JSON has no other kind). So `since: 2024-07-15T22:13:57Z` or a date in a step config means
what it means to kubectl, and every document converts to JSON unchanged.

Every manifest is user input, so reading one has a budget, and going over it is a YAMLLimitError
that says which limit was hit: the size of the text (MAX_BYTES), the number of documents
(MAX_DOCUMENTS), how deep collections nest (MAX_DEPTH) and how many nodes aliases may repeat
(MAX_ALIAS_NODES), so an 837-byte "billion laughs" is refused before anything is expanded. As
the API server does, a mapping that sets one key twice is refused rather than read as the last.
"""

from contextlib import contextmanager
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 2 * 1024 * 1024
MAX_DOCUMENTS = 1000
MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLSyntaxError(ValueError):
    def __init__(self, problem: str, line: int | None = None, column: int | None = None):
        self.problem, self.line, self.column = problem, line, column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}invalid YAML: {problem}")


class YAMLLimitError(YAMLSyntaxError):
    """The text is over one of the reading budgets; the problem names the limit."""


def _json_key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float) or key is None:
        return "null" if key is None else str(key)
    return key


class ManifestLoader(_BaseLoader):
    def construct_mapping(self, node, deep=False):
        # The API server refuses `name: a` followed by `name: b` in one mapping (go-yaml's
        # "key already set in map"); PyYAML would silently keep the last. Merged keys (`<<`)
        # may be overridden, as YAML intends; keys written twice may not.
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = _json_key(self.construct_object(key_node))
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"key {_quoted(key)} already set in map (first on line {seen[key]})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


# Drop the timestamp resolver: PyYAML would turn 2024-07-15T22:13:57Z into a datetime, which is
# neither what the API server keeps nor anything JSON can hold.
ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.copy().items()
}


def _quoted(key: Any) -> str:
    text = str(key)
    return '"' + (text if len(text) <= 60 else text[:57] + "...") + '"'


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {_json_key(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def _limit(problem: str, mark=None) -> YAMLLimitError:
    if mark is None:
        return YAMLLimitError(problem)
    return YAMLLimitError(problem, mark.line + 1, mark.column + 1)


def _check_size(text: str, max_bytes: int) -> None:
    # A character is at least one byte of UTF-8 and at most four.
    size = len(text) if len(text) > max_bytes or len(text) * 4 <= max_bytes else None
    if size is None:
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise _limit(f"the text is {size:,} bytes, over the limit of {max_bytes:,} bytes")


def _check_structure(text: str, max_documents: int, max_depth: int, max_alias_nodes: int) -> None:
    """One streaming pass over the parser's events (no nodes built) that counts documents,
    nesting and the nodes every alias would repeat, before anything is composed."""
    documents = 0
    alias_nodes = 0
    # Open collections: [anchor, nodes so far counting aliases as full copies].
    open_: list[list[Any]] = [[None, 0]]
    sizes: dict[str, int] = {}  # anchor -> nodes of the anchored value, aliases expanded
    for event in yaml.parse(text, Loader=ManifestLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > max_documents:
                raise _limit(f"more than {max_documents} documents", event.start_mark)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_) > max_depth:
                raise _limit(f"collections nest deeper than {max_depth} levels", event.start_mark)
            open_.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_.pop()
            open_[-1][1] += count
            if anchor is not None:
                sizes[anchor] = count
        elif isinstance(event, yaml.ScalarEvent):
            open_[-1][1] += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise _limit(
                    f"alias *{event.anchor} refers to a value that contains it", event.start_mark
                )
            count = sizes.get(event.anchor, 0)  # an undefined alias is the composer's error
            alias_nodes += count
            if alias_nodes > max_alias_nodes:
                raise _limit(
                    f"aliases expand to more than {max_alias_nodes:,} nodes", event.start_mark
                )
            open_[-1][1] += count


def load_all(
    text: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_documents: int = MAX_DOCUMENTS,
    max_depth: int = MAX_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
) -> list[Any]:
    """Every document of a multi-document YAML text, as JSON-compatible values."""
    with _as_syntax_errors(max_depth):
        check(
            text,
            max_bytes=max_bytes,
            max_documents=max_documents,
            max_depth=max_depth,
            max_alias_nodes=max_alias_nodes,
        )
        return [_as_json(doc) for doc in yaml.load_all(text, Loader=ManifestLoader)]


def check(
    text: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_documents: int = MAX_DOCUMENTS,
    max_depth: int = MAX_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
) -> None:
    """Hold any YAML text to the reading budgets before it is composed or loaded elsewhere (a
    step editing a repository's file keeps its own parser, but not without limits)."""
    _check_size(text, max_bytes)
    with _as_syntax_errors(max_depth):
        _check_structure(text, max_documents, max_depth, max_alias_nodes)


@contextmanager
def _as_syntax_errors(max_depth: int):
    try:
        yield
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "for the tag '!" in problem:
            # Kubernetes' YAML library drops unknown tags silently, so `filter: !(a == b)` would
            # reach the server as "== b)". Refuse it, and say how to write what was meant.
            problem += " (a plain value starting with '!' is read as a YAML tag: quote the value)"
        error = YAMLSyntaxError
        if problem == "exceeded maximum nesting depth":
            # libyaml's own limit (1000), met while it reads ahead of the events counted above.
            error, problem = YAMLLimitError, f"collections nest deeper than {max_depth} levels"
        if mark is None:
            raise error(problem) from None
        raise error(problem, mark.line + 1, mark.column + 1) from None


def load(text: str, **limits: int) -> Any:
    docs = load_all(text, **limits)
    return docs[0] if docs else None
