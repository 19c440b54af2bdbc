"""untar: extract a tar archive (gzipped or not, told by its magic bytes) into a directory.

Archives are untrusted, so every entry is checked before anything is written, and a bad one
fails the step (Kargo skips some of these silently): no absolute names, no ``..``, no link whose
target leaves the extraction directory, no hard links, device files or fifos; at most
MAX_ENTRIES entries, 50 MiB per file and 100 MiB in all (Kargo's limits). The archive is
extracted into a temporary directory in the work directory and moved into ``outPath`` only
when all of it was extracted, replacing entries of the same name there.
``stripComponents`` and ``ignore`` (.gitignore patterns on the stripped names) as in Kargo.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from pydantic import Field

from ._files import IgnoreMatcher, remove
from .base import Step, StepContext, StepError, StepModel, StepResult, register

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_TOTAL_BYTES = 100 * 1024 * 1024
MAX_ENTRIES = 10_000


class UntarConfig(StepModel):
    inPath: str = Field(min_length=1)
    outPath: str = Field(min_length=1)
    stripComponents: int | None = Field(default=None, ge=0)
    ignore: str | None = Field(default=None, min_length=1)


def _target_name(member: tarfile.TarInfo, strip: int) -> str | None:
    """The entry's name inside outPath, None to skip it; refuses unsafe names."""
    name = member.name
    if name.startswith(("/", "\\")):
        raise StepError(f"archive entry {name!r} has an absolute path")
    if ".." in name.split("/"):
        raise StepError(f"archive entry {name!r} leaves the extraction directory")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if strip:
        if len(parts) <= strip:
            return None
        parts = parts[strip:]
    return "/".join(parts) or None


def _check_link(member: tarfile.TarInfo, name: str) -> None:
    target = member.linkname
    if not target or target.startswith("/"):
        raise StepError(f"archive link {member.name!r} points to an absolute path")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise StepError(f"archive link {member.name!r} points outside the extraction directory")


def extract(ctx: StepContext, archive: tarfile.TarFile, dest: Path, strip: int, ignore) -> None:
    matcher = IgnoreMatcher(ignore)
    total = count = 0
    for member in archive:
        count += 1
        if count > MAX_ENTRIES:
            raise StepError(f"the archive has more than {MAX_ENTRIES:,} entries")
        if not (member.isfile() or member.isdir() or member.issym()):
            kind = "hard link" if member.islnk() else "device file or fifo"
            raise StepError(f"archive entry {member.name!r} is a {kind}, which is not extracted")
        name = _target_name(member, strip)
        if name is None or matcher.ignored(name, member.isdir()):
            continue
        target = ctx.path(dest / name)  # a link extracted earlier cannot lead out
        if member.isdir():
            ctx.guard.mkdir(target)
            continue
        ctx.guard.mkdir(target.parent)
        if os.path.lexists(target):
            remove(target)
        if member.issym():
            _check_link(member, name)
            os.symlink(member.linkname, target)
            continue
        if member.size > MAX_FILE_BYTES:
            raise StepError(f"archive file {name!r} is over the limit of {MAX_FILE_BYTES:,} bytes")
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise StepError(f"the archive holds more than {MAX_TOTAL_BYTES:,} bytes")
        source = archive.extractfile(member)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with source, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out)
        os.chmod(target, (member.mode & 0o777) or 0o600)


@register
class Untar(Step):
    name = "untar"
    Config = UntarConfig

    def run(self, ctx: StepContext, config: UntarConfig) -> StepResult:
        src = ctx.path(config.inPath)
        if not src.is_file():
            raise StepError(f"{config.inPath}: no such file")
        out = ctx.path(config.outPath)
        staging = Path(tempfile.mkdtemp(dir=ctx.guard.root, prefix=".untar-"))
        try:
            with open(src, "rb") as fh:
                gzipped = fh.read(2) == b"\x1f\x8b"
                fh.seek(0)
                try:
                    with tarfile.open(fileobj=fh, mode="r:gz" if gzipped else "r:") as archive:
                        extract(ctx, archive, staging, config.stripComponents or 0, config.ignore)
                except (tarfile.TarError, EOFError, OSError) as exc:
                    raise StepError(f"error reading tar file {config.inPath!r}: {exc}") from None
            ctx.guard.mkdir(out)
            for entry in sorted(staging.iterdir()):
                target = ctx.path(out / entry.name)
                if os.path.lexists(target):
                    remove(target)
                os.rename(entry, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return StepResult()
