"""Git with stored credentials against a real password-protected remote: git's own
`git http-backend` as CGI behind a small HTTP server with Basic auth on loopback. Discovery
(freight.discovery) and the git steps (git-clone, git-commit, git-push) authenticate with the
credential stored for the repository, through the askpass helper, and the password is never on a
command line, in a repository's config or in a message; without a credential, discovery fails
with a clear message."""

import base64
import http.server
import os
import subprocess
import threading
from pathlib import Path

import pytest

from freight.discovery import DiscoveryError, discover_git
from kargo import runner
from kargo.specs import GitSubscription
from projects.actions import do_create_project, do_save_credential
from projects.credentials import git_env
from stages.steps import StepError
from tests.integration.test_steps import make_ctx, run

USERNAME = "kargo-bot"
PASSWORD = "hunter2-Zq8xW4-not-in-argv"
pytestmark = pytest.mark.django_db


def sh(*args, cwd=None):
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


class GitHandler(http.server.BaseHTTPRequestHandler):
    """Basic auth, then git http-backend (smart HTTP) as a CGI program."""

    root: Path
    credentials: str
    seen_auth: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def serve(self):
        auth = self.headers.get("Authorization", "")
        self.seen_auth.append(auth)
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if auth != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": USERNAME,
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def git_server(tmp_path):
    """A bare repository `app.git` (main: two commits) served with Basic auth on loopback."""
    root = tmp_path / "served"
    root.mkdir()
    seed = tmp_path / "seed"
    seed.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=seed)
    for i in (1, 2):
        (seed / "base").mkdir(exist_ok=True)
        (seed / "base" / "values.yaml").write_text(f"version: {i}\n")
        sh("git", "add", ".", cwd=seed)
        sh(
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            f"c{i}",
            cwd=seed,
        )
    sh("git", "clone", "-q", "--bare", str(seed), str(root / "app.git"))
    handler = type(
        "Handler",
        (GitHandler,),
        {"root": root, "credentials": f"{USERNAME}:{PASSWORD}", "seen_auth": []},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/app.git", root / "app.git", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def commands(monkeypatch) -> list[list[str]]:
    """Every command line run through the runner from here on."""
    seen = []
    real = runner.run

    def recording(args, **kw):
        seen.append(list(args))
        return real(args, **kw)

    monkeypatch.setattr(runner, "run", recording)
    return seen


@pytest.fixture
def project():
    return do_create_project("private", "test")


def store(project, url: str, password: str = PASSWORD, shared: bool = False):
    do_save_credential(
        None if shared else project,
        "app-repo",
        "git",
        {"repoURL": url, "username": USERNAME, "password": password},
        "test",
    )


def test_discovery_without_a_credential_fails_clearly(git_server, project, tmp_path):
    url, _, _ = git_server
    with pytest.raises(DiscoveryError) as caught:
        discover_git(
            GitSubscription(repoURL=url), tmp_path / "cache", auth_env=git_env(project.id, url)
        )
    message = str(caught.value)
    assert url in message and "could not read Username" in message


def test_discovery_with_the_stored_credential(git_server, project, tmp_path, commands):
    url, _, handler = git_server
    store(project, url.removesuffix(".git"))  # matched through Kargo's URL normalisation
    found = discover_git(
        GitSubscription(repoURL=url), tmp_path / "cache", auth_env=git_env(project.id, url)
    )
    assert [c.subject for c in found] == ["c2", "c1"]
    assert any(a.startswith("Basic ") and a != "" for a in handler.seen_auth)
    assert all(PASSWORD not in " ".join(args) for args in commands)
    # Nothing of the credential on disk: not in the mirror's config, not in any file.
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_discovery_with_a_shared_credential_and_a_wrong_one(git_server, project, tmp_path):
    url, _, _ = git_server
    store(project, url, shared=True)
    found = discover_git(
        GitSubscription(repoURL=url), tmp_path / "cache", auth_env=git_env(project.id, url)
    )
    assert found[0].subject == "c2"
    # The project's own credential comes first, even when it is wrong; the message has no secret.
    store(project, url, password="wrong-" + PASSWORD)
    with pytest.raises(DiscoveryError) as caught:
        discover_git(
            GitSubscription(repoURL=url), tmp_path / "cache3", auth_env=git_env(project.id, url)
        )
    assert "Authentication failed" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_git_steps_clone_commit_and_push_with_the_stored_credential(
    git_server, project, tmp_path, commands
):
    url, bare, _ = git_server
    store(project, url)
    ctx = make_ctx(tmp_path, project="private", project_id=project.id)
    run(
        ctx,
        "git-clone",
        {
            "repoURL": url,
            "checkout": [
                {"branch": "main", "path": "./src"},
                {"branch": "stage/test", "create": True, "path": "./out"},
            ],
        },
    )
    ctx.path("out/values.yaml").write_text("version: 3\n")
    run(ctx, "git-commit", {"path": "./out", "message": "promote"})
    result = run(ctx, "git-push", {"path": "./out"})
    assert result.status == "Succeeded"
    assert sh("git", "log", "-1", "--format=%s", "stage/test", cwd=bare).strip() == "promote"
    assert result.outputs["commit"] == sh("git", "rev-parse", "stage/test", cwd=bare).strip()
    # A second push after the remote moved on (fetch, rebase, push) authenticates as well.
    other = tmp_path / "other"
    sh("git", "clone", "-q", "-b", "stage/test", str(bare), str(other))
    (other / "extra.txt").write_text("x\n")
    sh("git", "add", ".", cwd=other)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "other", cwd=other)
    sh("git", "push", "-q", "origin", "stage/test", cwd=other)
    ctx.path("out/values.yaml").write_text("version: 4\n")
    run(ctx, "git-commit", {"path": "./out", "message": "promote again"})
    assert run(ctx, "git-push", {"path": "./out"}).status == "Succeeded"
    assert sh("git", "log", "-3", "--format=%s", "stage/test", cwd=bare).splitlines() == [
        "promote again",
        "other",
        "promote",
    ]
    # Never on a command line, never in a repository's config or any file of the work dir.
    assert all(PASSWORD not in " ".join(args) for args in commands)
    for path in ctx.work_dir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_git_steps_without_a_credential_fail_without_prompting(git_server, project, tmp_path):
    url, _, _ = git_server
    ctx = make_ctx(tmp_path, project="private", project_id=project.id)
    with pytest.raises(StepError) as caught:
        run(ctx, "git-clone", {"repoURL": url, "checkout": [{"branch": "main", "path": "./src"}]})
    assert "could not read Username" in str(caught.value)
