"""The one guard for every path a promotion step reads or writes.

A promotion works inside one private directory, filled with content from repositories that may
be hostile: a committed symlink can point anywhere on the server. So every path is resolved with
all its symlinks and must land inside the work directory, and files are opened so that a symlink
put in place after that check is refused rather than followed.
"""

import os
from pathlib import Path


class PathEscape(ValueError):
    """A path that leaves the work directory (or is not a usable path); the message says which."""


class WorkDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path(self, rel: str | os.PathLike) -> Path:
        """`rel` resolved against the work directory, every symlink followed; refused when it
        lands outside (absolute paths elsewhere, `..`, symlinks that point out). Callers act on
        the returned real path, the one that was checked."""
        raw = os.fspath(rel)
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            # resolve() follows every symlink that exists along the way; a tail that does not
            # exist yet (a file about to be created) is kept as written.
            resolved = candidate.resolve()
        except (ValueError, OSError) as exc:  # an embedded NUL byte, a symlink loop
            raise PathEscape(
                f"invalid path {self.shown(raw)!r}: {exc.__class__.__name__}"
            ) from None
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise PathEscape(f"path {self.shown(raw)!r} escapes the work directory")
        return resolved

    def shown(self, raw: str) -> str:
        """A path as a user may see it: relative to the work directory, never the server's own
        absolute location."""
        return raw.replace(f"{self.root}/", "").replace(str(self.root), ".")

    def read_text(self, rel: str | os.PathLike) -> str:
        with self._open(rel, os.O_RDONLY) as fh:
            return fh.read().decode("utf-8")

    def write_text(self, rel: str | os.PathLike, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_bytes(self, rel: str | os.PathLike, data: bytes) -> Path:
        """Create or replace a file, making its directories, all inside the work directory."""
        target = self.path(rel)
        self.mkdir(target.parent)
        with self._open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) as fh:
            fh.write(data)
        return target

    def mkdir(self, rel: str | os.PathLike) -> Path:
        target = self.path(rel)
        target.mkdir(parents=True, exist_ok=True)
        # A directory created on the way may have been swapped for a link meanwhile.
        self.path(target)
        return target

    def check_links(self, rel: str | os.PathLike) -> None:
        """Refuse a tree that holds a symlink leading out of the work directory. For tools that
        read files themselves (kustomize), which would follow such a link."""
        top = self.path(rel)
        for directory, dirs, files in os.walk(top):  # does not descend into linked directories
            for name in dirs + files:
                entry = Path(directory, name)
                if entry.is_symlink():
                    self.path(entry)

    def _open(self, rel: str | os.PathLike, flags: int):
        target = self.path(rel)
        try:
            # O_NOFOLLOW: a symlink at the last component (put there after the check) is an
            # error, never followed.
            fd = os.open(target, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise PathEscape(f"cannot open {self.shown(str(target))!r}: {exc.strerror}") from None
        return os.fdopen(fd, "rb" if flags == os.O_RDONLY else "wb")
