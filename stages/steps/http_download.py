"""http-download: fetch a file over HTTP(S) into the work directory (Kargo's http_downloader.go).

The body is streamed into a temporary file beside the target (never held in memory), capped at
MAX_DOWNLOAD_BYTES and the step's timeout as a whole, and moved into place only when complete:
a failed download never leaves a partial file at `outPath`. `outPath` goes through the work
directory guard; an existing file is refused unless `allowOverwrite` is set.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import timedelta

from pydantic import Field

from projects.outbound import OutboundError, Request

from ._http import Duration, NameValue, duration, header_map, send_request, with_query
from .base import Step, StepContext, StepError, StepModel, StepResult, register

MAX_DOWNLOAD_BYTES = 100 << 20  # Kargo's maxDownloadSize
DEFAULT_TIMEOUT = timedelta(minutes=5)


class HTTPDownloadConfig(StepModel):
    # Optional fields default to None but are typed without it: an explicit null is refused,
    # as Kargo's schema refuses it.
    url: str = Field(min_length=1)
    outPath: str = Field(min_length=1)
    allowOverwrite: bool = None
    headers: list[NameValue] = None
    queryParams: list[NameValue] = None
    insecureSkipTLSVerify: bool = None
    timeout: Duration = None


class Sink:
    """The temporary file the body is written to; enforces the whole download's deadline (the
    client's own timeout applies to each read)."""

    def __init__(self, fh, deadline: float, timeout: timedelta):
        self.fh, self.deadline, self.timeout = fh, deadline, timeout

    def write(self, chunk: bytes) -> int:
        if time.monotonic() > self.deadline:
            raise OutboundError(f"download did not complete within {self.timeout}")
        return self.fh.write(chunk)


@register
class HTTPDownloadStep(Step):
    name = "http-download"
    Config = HTTPDownloadConfig

    def run(self, ctx: StepContext, config: HTTPDownloadConfig) -> StepResult:
        target = ctx.path(config.outPath)
        if not config.allowOverwrite and (target.exists() or target.is_symlink()):
            raise StepError(f"file already exists at {config.outPath} and overwrite is not allowed")
        if target.is_dir():
            raise StepError(f"{config.outPath} is a directory")
        timeout = duration(config.timeout, DEFAULT_TIMEOUT, "timeout")
        parent = ctx.guard.mkdir(target.parent)
        fd, temp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                answer = send_request(
                    Request(
                        method="GET",
                        url=with_query(config.url, config.queryParams),
                        headers=header_map(config.headers),
                        timeout=timeout.total_seconds(),
                        insecure=bool(config.insecureSkipTLSVerify),
                        max_bytes=MAX_DOWNLOAD_BYTES,
                        sink=Sink(fh, time.monotonic() + timeout.total_seconds(), timeout),
                    )
                )
            if not 200 <= answer.status < 300:
                return StepResult(
                    status="Failed", message=f"HTTP request failed with status {answer.status}"
                )
            # Checked again: the target (or a directory on its way) may have become a link.
            final = ctx.path(config.outPath)
            if not config.allowOverwrite and (final.exists() or final.is_symlink()):
                raise StepError(
                    f"file already exists at {config.outPath} and overwrite is not allowed"
                )
            os.replace(temp, final)  # replaces a link itself, never what it points to
        except StepError as exc:
            if "larger than" in str(exc):
                raise StepError(f"download exceeds limit of {MAX_DOWNLOAD_BYTES} bytes") from None
            raise
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        return StepResult()
