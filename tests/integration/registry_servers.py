"""Real servers for image and chart discovery (test_image_discovery.py, test_chart_discovery.py,
bench/bench_image_discovery.py):

- RegistryServer: Debian's `docker-registry` (CNCF distribution) on a free loopback port with its
  storage in a temporary directory: anonymous, behind htpasswd (basic) auth, or behind a bearer
  token service (TokenServer). Never the package's system service on port 5000.
- Pusher: puts images and OCI charts into it through the distribution API (blob upload POST/PUT,
  manifest PUT), as `docker push` and `helm push` do: plain images, multi-arch OCI indexes with
  per-platform manifests and config blobs, Helm charts as OCI artifacts.
- TokenServer: the registry's token service (Docker's token protocol), issuing JWTs signed with a
  key whose self-signed certificate the registry trusts.
- ChartRepoServer: a classic Helm chart repository (index.yaml and .tgz files) over HTTP.

htpasswd entries are made with `htpasswd -nbB` from apache2-utils (bcrypt, which the registry
requires); the Python `bcrypt` package is not installed here.
"""

import base64
import hashlib
import io
import json
import re
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.e2e.servers import ServerError, ServerProcess, clean_env, free_port

REGISTRY = Path("/usr/bin/docker-registry")
HTPASSWD = Path("/usr/bin/htpasswd")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CONTENT = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}"""

# A request line of the registry's access log (Apache combined format).
ACCESS_LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (/v2/\S*) HTTP/[\d.]+" (\d{3})')


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryServer:
    """A running registry at `host` (127.0.0.1:PORT). `auth` is None, "htpasswd" or "token"."""

    def __init__(self, work_dir: Path, auth: str | None = None, user="alice", password="s3cret-pw"):
        self.work_dir = work_dir
        self.user, self.password = user, password
        self.token_server = None
        auth_config = ""
        if auth == "htpasswd":
            entry = subprocess.run(
                [str(HTPASSWD), "-nbB", user, password],
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
            (work_dir / "htpasswd").write_text(entry + "\n")
            auth_config = (
                f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {work_dir / 'htpasswd'}\n"
            )
        elif auth == "token":
            self.token_server = TokenServer(work_dir, user, password)
            auth_config = (
                "auth:\n  token:\n"
                f"    realm: {self.token_server.url}/token\n"
                f"    service: {TokenServer.SERVICE}\n"
                f"    issuer: {TokenServer.ISSUER}\n"
                f"    rootcertbundle: {self.token_server.cert_path}\n"
            )
        for attempt in range(3):
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            config = work_dir / f"registry-{attempt}.yml"
            config.write_text(
                CONFIG.format(root=work_dir / "storage", port=self.port, auth=auth_config)
            )
            self.process = ServerProcess(
                f"registry-{attempt}",
                [str(REGISTRY), "serve", str(config)],
                clean_env(),
                work_dir,
            )
            try:
                self._wait_until_listening(60)
                break
            except ServerError:
                self.process.stop()
                if "address already in use" not in self.process.log() or attempt == 2:
                    raise
        self.pusher = Pusher(self)

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.process._check_alive()
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # 401 with auth: it is up
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"registry did not answer within {timeout:.0f}s")
            time.sleep(0.1)

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every API request in the access log so far."""
        return [(m.group(1), m.group(2), int(m.group(3))) for m in ACCESS_LINE.finditer(self.log())]

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()
        if self.token_server:
            self.token_server.stop()


@dataclass
class Pusher:
    """Pushes through the distribution API, authenticating as the registry asks."""

    registry: RegistryServer
    _tokens: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _auth(self, repo: str) -> dict:
        reg = self.registry
        if reg.token_server:
            with self._lock:
                if repo not in self._tokens:
                    self._tokens[repo] = reg.token_server.issue(
                        reg.user, [("repository", repo, ["pull", "push"])]
                    )
            return {"Authorization": f"Bearer {self._tokens[repo]}"}
        basic = base64.b64encode(f"{reg.user}:{reg.password}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}

    def _call(self, method, url, repo, body=None, headers=None) -> urllib.request.Request:
        request = urllib.request.Request(
            url, data=body, method=method, headers={**self._auth(repo), **(headers or {})}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer

    def blob(self, repo: str, data: bytes) -> dict:
        """Upload a blob (POST then one PUT); returns its descriptor fields."""
        digest = digest_of(data)
        base = f"http://{self.registry.host}"
        answer = self._call("POST", f"{base}/v2/{repo}/blobs/uploads/", repo, b"")
        location = answer.headers["Location"]
        if location.startswith("/"):
            location = base + location
        sep = "&" if "?" in location else "?"
        self._call(
            "PUT",
            f"{location}{sep}digest={digest}",
            repo,
            data,
            {"Content-Type": "application/octet-stream"},
        )
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, reference: str, body: dict, media_type: str) -> str:
        data = json.dumps(body).encode()
        self._call(
            "PUT",
            f"http://{self.registry.host}/v2/{repo}/manifests/{reference}",
            repo,
            data,
            {"Content-Type": media_type},
        )
        return digest_of(data)

    def delete_manifest(self, repo: str, digest: str) -> None:
        self._call("DELETE", f"http://{self.registry.host}/v2/{repo}/manifests/{digest}", repo)

    def image_manifest(
        self,
        repo: str,
        *,
        created: datetime | None,
        os: str = "linux",
        arch: str = "amd64",
        variant: str = "",
        labels: dict | None = None,
        annotations: dict | None = None,
        layer: bytes | None = None,
    ) -> tuple[dict, bytes]:
        """Push a config blob and a layer; return (manifest body, its bytes)."""
        config = {
            "architecture": arch,
            "os": os,
            **({"variant": variant} if variant else {}),
            **({"created": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")} if created else {}),
            "config": {"Labels": labels or {}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        config_blob = self.blob(repo, json.dumps(config).encode())
        layer_blob = self.blob(repo, layer or f"layer of {uuid.uuid4()}".encode())
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config_blob},
            "layers": [{"mediaType": OCI_LAYER, **layer_blob}],
            **({"annotations": annotations} if annotations else {}),
        }
        return body, json.dumps(body).encode()

    def image(self, repo: str, tag: str, *, created: datetime | None = None, **kwargs) -> str:
        """Push a single-platform image under `tag`; returns its digest."""
        body, _ = self.image_manifest(repo, created=created, **kwargs)
        return self.manifest(repo, tag, body, OCI_MANIFEST)

    def index(
        self,
        repo: str,
        tag: str,
        platforms: list[dict],
        *,
        annotations: dict | None = None,
        attestation: bool = True,
    ) -> str:
        """Push a multi-arch OCI index: one manifest per platform ({os, arch, variant?, created,
        annotations?: of the index entry}), plus an attestation entry with an "unknown" platform
        as BuildKit writes. Returns the index digest."""
        entries = []
        for platform in platforms:
            body, data = self.image_manifest(
                repo,
                created=platform.get("created"),
                os=platform["os"],
                arch=platform["arch"],
                variant=platform.get("variant", ""),
            )
            digest = self.manifest(repo, digest_of(data), body, OCI_MANIFEST)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(data),
                    "platform": {
                        "os": platform["os"],
                        "architecture": platform["arch"],
                        **({"variant": platform["variant"]} if platform.get("variant") else {}),
                    },
                    **(
                        {"annotations": platform["annotations"]}
                        if platform.get("annotations")
                        else {}
                    ),
                }
            )
        if attestation:
            body, data = self.image_manifest(repo, created=None, os="unknown", arch="unknown")
            digest = self.manifest(repo, digest_of(data), body, OCI_MANIFEST)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(data),
                    "platform": {"os": "unknown", "architecture": "unknown"},
                }
            )
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
            **({"annotations": annotations} if annotations else {}),
        }
        return self.manifest(repo, tag, index, OCI_INDEX)

    def chart(self, repo: str, name: str, version: str) -> str:
        """Push a Helm chart as an OCI artifact, tagged as `helm push` tags it ("+" as "_")."""
        config = self.blob(repo, json.dumps({"name": name, "version": version}).encode())
        content = self.blob(repo, chart_archive(name, version))
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": HELM_CONFIG, **config},
            "layers": [{"mediaType": HELM_CONTENT, **content}],
        }
        return self.manifest(repo, version.replace("+", "_"), body, OCI_MANIFEST)


class TokenServer:
    """Docker's token service for the registry: GET /token?service=&scope= with basic auth
    answers {"token": JWT}; anonymous requests get a token without access."""

    SERVICE = "kargo-test-registry"
    ISSUER = "kargo-test-issuer"

    def __init__(self, work_dir: Path, user: str, password: str):
        self.user, self.password = user, password
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-signer")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = work_dir / "token-signer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.asked: list[dict] = []  # {scope, service, authenticated} per request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                header = self.headers.get("Authorization", "")
                authenticated = (
                    header
                    == "Basic "
                    + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                )
                if header and not authenticated:
                    self.send_response(401)
                    self.end_headers()
                    return
                scope = query.get("scope", [""])[0]
                server.asked.append(
                    {
                        "scope": scope,
                        "service": query.get("service", [""])[0],
                        "authenticated": authenticated,
                    }
                )
                access = []
                if authenticated and scope.count(":") == 2:
                    kind, repo, actions = scope.split(":")
                    access.append((kind, repo, actions.split(",")))
                body = json.dumps({"token": server.issue(server.user, access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def issue(self, subject: str, access: list[tuple[str, str, list[str]]]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.ISSUER,
            "sub": subject,
            "aud": self.SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [{"type": t, "name": n, "actions": a} for t, n, a in access],
        }
        x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [x5c]})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chart_archive(name: str, version: str) -> bytes:
    """A minimal chart .tgz: <name>/Chart.yaml."""
    buffer = io.BytesIO()
    chart_yaml = yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version}).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(chart_yaml)
        archive.addfile(info, io.BytesIO(chart_yaml))
    return buffer.getvalue()


class ChartRepoServer:
    """A classic Helm chart repository over HTTP on loopback, serving `root` (index.yaml and
    charts), optionally behind basic auth; records the paths asked for."""

    def __init__(self, root: Path, credentials: tuple[str, str] | None = None):
        self.root = root
        self.asked: list[str] = []
        expected = (
            "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
            if credentials
            else None
        )
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.asked.append(self.path)
                if expected and self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.end_headers()
                    return
                target = (server.root / urlsplit(self.path).path.lstrip("/")).resolve()
                if not target.is_file() or server.root.resolve() not in target.parents:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, path: str, charts: dict[str, list[str]]) -> None:
        """Write `path`/index.yaml listing `charts` (name -> versions) and their archives."""
        directory = self.root / path
        directory.mkdir(parents=True, exist_ok=True)
        entries = {}
        for name, versions in charts.items():
            entries[name] = []
            for version in versions:
                archive = f"{name}-{version}.tgz"
                data = chart_archive(name, version)
                (directory / archive).write_bytes(data)
                entries[name].append(
                    {
                        "apiVersion": "v2",
                        "name": name,
                        "version": version,
                        "urls": [archive],
                        "digest": hashlib.sha256(data).hexdigest(),
                    }
                )
        index = {"apiVersion": "v1", "entries": entries, "generated": "2026-12-01T00:00:00Z"}
        # Versions written as YAML strings, as helm writes them ("1.10" must stay "1.10").
        (directory / "index.yaml").write_text(yaml.safe_dump(index))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class PagingProxy:
    """A reverse proxy in front of a RegistryServer that pages tag lists as distribution v3 and
    the hosted registries do (`n` and `last`, a Link header to the next page), which Debian's
    distribution 2.8 does not; everything else passes through unchanged. It counts what it
    forwards: (method, path) per request."""

    def __init__(self, registry: RegistryServer, default_page: int | None = None):
        self.registry = registry
        self.asked: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                parts = urlsplit(self.path)
                with server._lock:
                    server.asked.append((self.command, parts.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                query = parse_qs(parts.query)
                paged = parts.path.endswith("/tags/list") and self.command == "GET"
                upstream = f"http://{server.registry.host}{parts.path}"
                if not paged and parts.query:
                    upstream += "?" + parts.query
                request = urllib.request.Request(
                    upstream, data=body, method=self.command, headers=headers
                )
                try:
                    answer = urllib.request.urlopen(request, timeout=60)
                except urllib.error.HTTPError as error:
                    answer = error
                status, data = answer.status, answer.read()
                out_headers = [
                    (k, v)
                    for k, v in answer.headers.items()
                    if k.lower() not in ("content-length", "connection", "transfer-encoding")
                ]
                size = int(query.get("n", [default_page or 0])[0] or 0)
                if paged and status == 200 and size:
                    listing = json.loads(data)
                    tags = sorted(listing.get("tags") or [])
                    last = query.get("last", [""])[0]
                    rest = [t for t in tags if t > last] if last else tags
                    page = rest[:size]
                    listing["tags"] = page
                    data = json.dumps(listing).encode()
                    if len(rest) > size:
                        out_headers.append(
                            ("Link", f'<{parts.path}?last={page[-1]}&n={size}>; rel="next"')
                        )
                self.send_response(status)
                for k, v in out_headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
