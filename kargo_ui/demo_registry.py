"""The demo's image registry: Debian's `docker-registry` (CNCF distribution) on
127.0.0.1:DEMO_REGISTRY_PORT, its storage and config under DATA_DIR/demo/registry, holding one
small image, demo/guestbook, tagged 1.0.0, 1.1.0 and 1.2.0, which the demo's Warehouse tracks.

`manage.py demo` starts it only to push the images when they are not there yet, then stops it;
`manage.py serve` in demo mode runs it beside the dashboard and stops it on exit. Nothing here
runs outside demo mode.

The images are pushed through the distribution API (blob upload POST then PUT, manifest PUT), as
`docker push` does. Their content is fixed (config blob with a `created` date, one tiny layer),
so their digests are the same on every machine and every run.
"""

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

BINARY = Path("/usr/bin/docker-registry")
REPOSITORY = "demo/guestbook"
# tag -> build date: three releases, as the demo's app repository has.
RELEASES = {
    "1.0.0": "2026-01-05T10:00:00Z",
    "1.1.0": "2026-02-02T10:00:00Z",
    "1.2.0": "2026-03-02T10:00:00Z",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
START_TIMEOUT = 30.0

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


class RegistryUnavailable(Exception):
    """The demo registry cannot run here; the message says why, for the person running the demo."""


def available() -> bool:
    return BINARY.exists()


def root() -> Path:
    return settings.DATA_DIR / "demo" / "registry"


def host() -> str:
    return f"127.0.0.1:{settings.DEMO_REGISTRY_PORT}"


def image_url() -> str:
    """The repoURL the demo's Warehouse subscribes to."""
    return f"{host()}/{REPOSITORY}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    tag: str
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return _digest(self.manifest)


def build_image(tag: str) -> Image:
    """The image for `tag`: its config blob (with its build date), one layer and the manifest."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": RELEASES[tag],
            "config": {"Labels": {"org.opencontainers.image.version": tag}},
            "rootfs": {"type": "layers", "diff_ids": []},
        },
        sort_keys=True,
    ).encode()
    layer = f"guestbook {tag}\n".encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": _digest(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    return Image(tag, config, layer, manifest)


def images() -> dict[str, Image]:
    return {tag: build_image(tag) for tag in RELEASES}


def stored_tags(storage: Path | None = None) -> dict[str, str]:
    """tag -> digest of the demo image's tags in the registry's storage (its filesystem layout:
    one link file per tag), read without the registry running."""
    tags_dir = (
        (storage or root() / "storage")
        / "docker/registry/v2/repositories"
        / REPOSITORY
        / "_manifests/tags"
    )
    found = {}
    for tag in RELEASES:
        link = tags_dir / tag / "current" / "link"
        if link.is_file():
            found[tag] = link.read_text().strip()
    return found


def images_present() -> bool:
    wanted = {tag: image.digest for tag, image in images().items()}
    return stored_tags() == wanted


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` (connections of a registry stopped moments
    ago, still in TIME_WAIT, do not count: the registry binds with SO_REUSEADDR too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class DemoRegistry:
    """The registry process: `start()` writes its config and waits until it answers; `stop()`
    ends it. A child in its own session, started from an argument list (no shell)."""

    def __init__(self, port: int | None = None, directory: Path | None = None):
        self.port = port or settings.DEMO_REGISTRY_PORT
        self.directory = directory or root()
        self.host = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "DemoRegistry":
        if not available():
            raise RegistryUnavailable(f"{BINARY} is not installed (Debian package docker-registry)")
        if port_in_use(self.port):
            raise RegistryUnavailable(
                f"port {self.port} on 127.0.0.1 is already in use "
                "(set KARGO_DEMO_REGISTRY_PORT to another port)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yml"
        config.write_text(CONFIG.format(root=self.directory / "storage", port=self.port))
        log = (self.directory / "registry.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        try:
            self.process = subprocess.Popen(
                [str(BINARY), "serve", str(config)],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise RegistryUnavailable(f"cannot run {BINARY}: {exc}") from None
        finally:
            log.close()
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RegistryUnavailable(
                    f"docker-registry exited at start (code {self.process.returncode}); "
                    f"see {self.directory / 'registry.log'}"
                )
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RegistryUnavailable(
                    f"docker-registry did not answer on {self.host} within {START_TIMEOUT:.0f}s"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "DemoRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------
    # Pushing, through the distribution API
    # ----------------------------------------------------------------------------------------

    def _call(self, method: str, url: str, body: bytes | None = None, content_type: str = ""):
        headers = {"Content-Type": content_type} if content_type else {}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            return answer

    def push_blob(self, data: bytes) -> None:
        base = f"http://{self.host}"
        answer = self._call("POST", f"{base}/v2/{REPOSITORY}/blobs/uploads/", b"")
        location = answer.headers["Location"]
        if location.startswith("/"):
            location = base + location
        separator = "&" if "?" in location else "?"
        self._call(
            "PUT",
            f"{location}{separator}digest={_digest(data)}",
            data,
            "application/octet-stream",
        )

    def push_image(self, image: Image) -> str:
        self.push_blob(image.config)
        self.push_blob(image.layer)
        self._call(
            "PUT",
            f"http://{self.host}/v2/{REPOSITORY}/manifests/{image.tag}",
            image.manifest,
            OCI_MANIFEST,
        )
        return image.digest

    def push_demo_images(self) -> dict[str, str]:
        """Push every tag of the demo image; returns tag -> digest."""
        return {tag: self.push_image(image) for tag, image in images().items()}

    def tags(self) -> list[str]:
        with urllib.request.urlopen(
            f"http://{self.host}/v2/{REPOSITORY}/tags/list", timeout=10
        ) as answer:
            return json.loads(answer.read()).get("tags") or []


def ensure_images() -> dict[str, str]:
    """The demo image's tag -> digest, pushed first (with the registry started just for that)
    when its storage does not hold them yet. Raises RegistryUnavailable."""
    if images_present():
        return {tag: image.digest for tag, image in images().items()}
    with DemoRegistry() as registry:
        try:
            return registry.push_demo_images()
        except OSError as exc:
            raise RegistryUnavailable(f"pushing to the demo registry failed: {exc}") from None
