"""Helpers shared by the file steps (copy, tar, untar, delete): the .gitignore-style ``ignore``
matcher Kargo's steps take, and removing a path without following links.

The matcher implements the .gitignore subset Kargo's steps rely on (go-git's gitignore): one
pattern a line, ``#`` comments, ``!`` negation, a trailing ``/`` for directories only, a ``/``
anywhere but at the end anchors the pattern to the step's root, ``*``/``?``/``[...]`` within a
name and ``**`` across directories; the last matching pattern wins, and a path under an ignored
directory is ignored too.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from wcmatch import fnmatch, glob

_FLAGS = glob.GLOBSTAR | glob.DOTGLOB


@dataclass(frozen=True)
class _Pattern:
    text: str
    negated: bool
    dir_only: bool
    anchored: bool

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.anchored:
            return glob.globmatch(rel, self.text, flags=_FLAGS)
        return fnmatch.fnmatch(rel.rsplit("/", 1)[-1], self.text, flags=fnmatch.DOTMATCH)


class IgnoreMatcher:
    def __init__(self, rules: str | None, *, always: tuple[str, ...] = ()):
        self.patterns: list[_Pattern] = []
        for line in [*always, *(rules or "").splitlines()]:
            text = line.rstrip()
            if not text.strip() or text.startswith("#"):
                continue
            negated = text.startswith("!")
            text = text[1:] if negated else text
            dir_only = text.endswith("/")
            text = text.rstrip("/")
            anchored = "/" in text
            text = text.lstrip("/")
            if text:
                self.patterns.append(_Pattern(text, negated, dir_only, anchored))

    def _decide(self, rel: str, is_dir: bool) -> bool | None:
        verdict = None
        for pattern in self.patterns:
            if pattern.matches(rel, is_dir):
                verdict = not pattern.negated
        return verdict

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Is ``rel`` (a /-separated path relative to the step's root) ignored?"""
        parts = [p for p in rel.split("/") if p and p != "."]
        for depth in range(1, len(parts)):
            if self._decide("/".join(parts[:depth]), True):
                return True
        return bool(parts) and bool(self._decide("/".join(parts), is_dir))


def remove(path: Path) -> None:
    """Remove a file, link or directory tree; a link is removed, never what it points to."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
