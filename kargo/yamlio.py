"""YAML read as the Kubernetes API server reads it (sigs.k8s.io/yaml): YAML 1.1 scalars, except
that timestamps stay the strings they were written as, and non-string map keys become strings
(JSON has no other kind). So `since: 2024-07-15T22:13:57Z` or a date in a step config means
what it means to kubectl, and every document converts to JSON unchanged.
"""

from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestLoader(_BaseLoader):
    pass


# Drop the timestamp resolver: PyYAML would turn 2024-07-15T22:13:57Z into a datetime, which is
# neither what the API server keeps nor anything JSON can hold.
ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.copy().items()
}


class YAMLSyntaxError(ValueError):
    def __init__(self, problem: str, line: int | None = None, column: int | None = None):
        self.problem, self.line, self.column = problem, line, column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}invalid YAML: {problem}")


def _json_key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float) or key is None:
        return "null" if key is None else str(key)
    return key


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {_json_key(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def load_all(text: str) -> list[Any]:
    """Every document of a multi-document YAML text, as JSON-compatible values."""
    try:
        return [_as_json(doc) for doc in yaml.load_all(text, Loader=ManifestLoader)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "for the tag '!" in problem:
            # Kubernetes' YAML library drops unknown tags silently, so `filter: !(a == b)` would
            # reach the server as "== b)". Refuse it, and say how to write what was meant.
            problem += " (a plain value starting with '!' is read as a YAML tag: quote the value)"
        if mark is None:
            raise YAMLSyntaxError(problem) from None
        raise YAMLSyntaxError(problem, mark.line + 1, mark.column + 1) from None


def load(text: str) -> Any:
    docs = load_all(text)
    return docs[0] if docs else None
