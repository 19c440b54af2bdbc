"""Helpers for tests that build manifests."""

import copy


def changed(base: dict, path: str, value=..., delete: bool = False) -> dict:
    """A deep copy of base with the value at a dotted path (list indices as numbers) replaced,
    or deleted."""
    result = copy.deepcopy(base)
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    target = result
    for part in parents:
        target = target[part]
    if delete:
        del target[last]
    else:
        target[last] = value
    return result
