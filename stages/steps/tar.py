"""tar: archive a file or a directory of the work directory (optionally gzipped).

As Kargo's: a directory's entries are stored relative to it (a file under its own name), the
``ignore`` patterns are .gitignore patterns relative to ``inPath``, a file over 50 MiB or a
total over 100 MiB is refused, and the archive is written to a temporary file first, so a
failure never leaves a half-written archive at ``outPath``. Symlinks are stored as links, but
one that points outside the work directory is refused (Kargo stores it as is).
"""

from __future__ import annotations

import os
import tarfile
import tempfile

from pydantic import Field

from ._files import IgnoreMatcher
from .base import Step, StepContext, StepError, StepModel, StepResult, register

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_TOTAL_BYTES = 100 * 1024 * 1024


class TarConfig(StepModel):
    inPath: str = Field(min_length=1)
    outPath: str = Field(min_length=1)
    ignore: str | None = Field(default=None, min_length=1)
    gzip: bool | None = None


@register
class Tar(Step):
    name = "tar"
    Config = TarConfig

    def run(self, ctx: StepContext, config: TarConfig) -> StepResult:
        src = ctx.path(config.inPath)
        if not src.exists():
            raise StepError(f"input path {config.inPath!r} does not exist")
        out = ctx.path(config.outPath)
        ctx.guard.mkdir(out.parent)
        matcher = IgnoreMatcher(config.ignore)
        entries: list[tuple[str, str]] = []  # (absolute path, archive name)
        if src.is_dir():
            for directory, dirs, files in os.walk(src):
                here = os.path.relpath(directory, src)
                prefix = "" if here == "." else here.replace(os.sep, "/") + "/"
                for name in sorted(dirs):
                    entry = os.path.join(directory, name)
                    is_dir = not os.path.islink(entry)
                    if matcher.ignored(prefix + name, is_dir):
                        dirs.remove(name)
                        continue
                    entries.append((entry, prefix + name))
                for name in sorted(files):
                    if not matcher.ignored(prefix + name, False):
                        entries.append((os.path.join(directory, name), prefix + name))
        elif not matcher.ignored(src.name, False):
            entries.append((str(src), src.name))
        total = 0
        for path, name in entries:
            if os.path.islink(path):
                ctx.path(path)  # a link leading out of the work directory is refused
            elif os.path.isfile(path):
                size = os.path.getsize(path)
                if size > MAX_FILE_BYTES:
                    raise StepError(
                        f"file {name!r} ({size:,} bytes) is over the limit of {MAX_FILE_BYTES:,}"
                    )
                total += size
                if total > MAX_TOTAL_BYTES:
                    raise StepError(f"the files to archive are over {MAX_TOTAL_BYTES:,} bytes")
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with (
                os.fdopen(fd, "wb") as fh,
                tarfile.open(
                    fileobj=fh, mode="w:gz" if config.gzip else "w", format=tarfile.PAX_FORMAT
                ) as archive,
            ):
                for path, name in entries:
                    if not (os.path.islink(path) or os.path.isdir(path) or os.path.isfile(path)):
                        continue  # fifos, sockets, devices
                    archive.add(path, arcname=name, recursive=False)
            os.replace(tmp, ctx.path(out))
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        return StepResult()
