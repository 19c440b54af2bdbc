"""`kargo-ui`, the remote CLI, as a person runs it: the installed console script in its own
process against `manage.py serve` on a free loopback port (the seeded demo), with API tokens of
each role made by `manage.py kargo create token`."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.e2e.servers import (
    ROOT,
    ServerError,
    ServerProcess,
    clean_env,
    embedded_env,
    free_port,
    manage,
    seed_demo,
    serve_argv,
)

KARGO_UI = ROOT / ".venv" / "bin" / "kargo-ui"
PROJECT = ["--project", "kargo-demo"]

CANARY = """\
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: canary
  namespace: kargo-demo
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: guestbook}
      sources: {stages: [prod]}
"""


@pytest.fixture(scope="module")
def server():
    """The demo served on a free port, and an API token per role (plus one expired, one
    revoked). Yields (base_url, tokens, env of the server for manage.py)."""
    if not KARGO_UI.exists():
        pytest.fail(f"{KARGO_UI} is missing: run scripts/setup.sh, which installs it")
    data_dir = Path(tempfile.mkdtemp(prefix="kargo-remote-cli-"))
    env = embedded_env(data_dir)
    port = free_port()
    proc = None
    try:
        seed_demo(env)
        tokens = {}
        for name, role in (
            ("viewer", "viewer"),
            ("promoter", "promoter"),
            ("admin", "admin"),
            ("old", "admin"),
            ("gone", "admin"),
        ):
            out = manage(env, "kargo", "create", "token", name, *PROJECT, "--role", role)
            tokens[name] = out.strip()
        manage(
            env,
            "shell",
            "-c",
            "from projects.models import ApiToken; "
            "ApiToken.objects.filter(name='old').update(expires_at='2020-01-01T00:00:00Z')",
        )
        manage(env, "kargo", "delete", "token", "gone", *PROJECT)
        proc = ServerProcess("serve", serve_argv(port), env, data_dir)
        base_url = f"http://127.0.0.1:{port}"
        proc.wait_for_log("serving on", timeout=60)
        proc.wait_for_http(f"{base_url}/healthz", timeout=30)
        yield base_url, tokens, env
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def home(tmp_path):
    """An empty HOME, so no real ~/.config/kargo-ui/config is read."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def kargo_ui(server, home, *args, token=None, config=None, stdin=None):
    base_url, tokens, _ = server
    env = clean_env(HOME=str(home))
    env.pop("KARGO_TOKEN", None)
    if token:
        env["KARGO_TOKEN"] = tokens[token]
    argv = [str(KARGO_UI), "--server", base_url]
    if config:
        argv += ["--config", str(config)]
    return subprocess.run(
        [*argv, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300
    )


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_apply_then_get_it_back(server, home, tmp_path):
    manifest = tmp_path / "canary.yaml"
    manifest.write_text(CANARY)
    assert ok(kargo_ui(server, home, "apply", "-f", str(manifest), *PROJECT, token="admin")) == (
        "stage/canary created\n"
    )
    again = kargo_ui(server, home, "apply", "-f", "-", *PROJECT, token="admin", stdin=CANARY)
    assert ok(again) == "stage/canary unchanged\n"
    doc = yaml.safe_load(
        ok(kargo_ui(server, home, "get", "stage", "canary", *PROJECT, "-o", "yaml", token="viewer"))
    )
    assert doc["metadata"]["name"] == "canary"
    assert doc["spec"]["requestedFreight"][0]["sources"] == {"stages": ["prod"]}
    listed = json.loads(
        ok(kargo_ui(server, home, "get", "stages", *PROJECT, "-o", "json", token="viewer"))
    )
    assert "canary" in [i["metadata"]["name"] for i in listed["items"]]
    assert "canary" in ok(kargo_ui(server, home, "get", "stages", *PROJECT, token="viewer"))

    # Every error names the file, the document and the field, as `manage.py kargo apply` does.
    bad = tmp_path / "bad.yaml"
    bad.write_text(CANARY.replace("name: canary", "name: broken").replace("sources:", "sourcez:"))
    proc = kargo_ui(server, home, "apply", "-f", str(bad), *PROJECT, token="admin")
    assert proc.returncode == 1
    assert f"{bad}: document 1 (Stage/broken): spec.requestedFreight[0]" in proc.stderr

    # Applying and deleting are an admin's.
    proc = kargo_ui(server, home, "apply", "-f", str(manifest), *PROJECT, token="promoter")
    assert proc.returncode == 1
    assert "needs the admin role" in proc.stderr
    assert ok(kargo_ui(server, home, "delete", "stage", "canary", *PROJECT, token="admin")) == (
        "stage/canary deleted\n"
    )
    proc = kargo_ui(server, home, "get", "stage", "canary", *PROJECT, token="viewer")
    assert proc.returncode == 1
    assert 'not found: Stage "canary" not found (HTTP 404)' in proc.stderr


def test_promote_waits_for_success_and_roles_cap_tokens(server, home):
    ok(
        kargo_ui(
            server, home, "refresh", "warehouse", "guestbook", *PROJECT, "--wait", token="promoter"
        )
    )

    # A viewer token may look, not promote.
    proc = kargo_ui(
        server, home, "promote", *PROJECT, "--stage", "test", "--warehouse", "guestbook", "--wait",
        token="viewer",
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: not allowed: This needs the promoter role in project kargo-demo; "
        "token 'viewer' has the viewer role (HTTP 403)"
    )

    out = ok(
        kargo_ui(
            server,
            home,
            "promote",
            *PROJECT,
            "--stage",
            "test",
            "--warehouse",
            "guestbook",
            "--wait",
            "--timeout",
            "240",
            token="promoter",
        )  # fmt: skip
    )
    created, result = out.splitlines()
    assert created.startswith("promotion/test.") and created.endswith(" created")
    assert result.startswith("Succeeded")
    name = created.split()[0].split("/", 1)[1]
    promotion = json.loads(
        ok(kargo_ui(server, home, "get", "promotion", name, *PROJECT, "-o", "json", token="viewer"))
    )
    assert promotion["status"]["phase"] == "Succeeded"

    # Aborting needs admin: a promoter token is refused before anything is looked at.
    proc = kargo_ui(server, home, "promote", *PROJECT, "--abort", "--name", name, token="promoter")
    assert proc.returncode == 1
    assert (
        "needs the admin role" in proc.stderr and "'promoter' has the promoter role" in proc.stderr
    )
    # Aborting a verification needs promoter: a viewer is refused; a promoter is told there is
    # nothing to abort (test has no verification in progress).
    proc = kargo_ui(server, home, "verify", "stage", "test", *PROJECT, "--abort", token="viewer")
    assert proc.returncode == 1 and "needs the promoter role" in proc.stderr
    proc = kargo_ui(server, home, "verify", "stage", "test", *PROJECT, "--abort", token="promoter")
    assert proc.returncode == 1 and "has no verification in progress to abort" in proc.stderr
    proc = kargo_ui(server, home, "promote", *PROJECT, "--abort", "--name", name, token="admin")
    assert proc.returncode == 1
    assert f"Promotion {name} already Succeeded" in proc.stderr

    assert "verification Successful" in ok(
        kargo_ui(server, home, "verify", "stage", "test", *PROJECT, token="admin")
    )
    ok(kargo_ui(server, home, "refresh", "stage", "test", *PROJECT, "--wait", token="promoter"))


def test_expired_revoked_and_missing_tokens_are_refused(server, home):
    proc = kargo_ui(server, home, "get", "stages", *PROJECT, token="old")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: the server refused the token: token 'old' expired at 2020-01-01T00:00:00Z (HTTP 401)"
    )
    proc = kargo_ui(server, home, "get", "stages", *PROJECT, token="gone")
    assert proc.returncode == 1
    assert "the server refused the token: invalid or revoked token" in proc.stderr
    proc = kargo_ui(server, home, "get", "stages", *PROJECT)
    assert proc.returncode == 1
    assert "no API token: set KARGO_TOKEN" in proc.stderr
    assert kargo_ui(server, home, "get", token="admin").returncode == 2  # usage


def test_the_config_file_must_be_private(server, home):
    base_url, tokens, _ = server
    config = home / ".config" / "kargo-ui" / "config"
    config.parent.mkdir(parents=True)
    config.write_text(f"server: {base_url}\ntoken: {tokens['viewer']}\nproject: kargo-demo\n")
    config.chmod(0o644)
    proc = kargo_ui(server, home, "get", "stages")
    assert proc.returncode == 1
    assert f"config file {config} has mode 0644" in proc.stderr
    assert f"chmod 600 {config}" in proc.stderr
    assert tokens["viewer"] not in proc.stderr
    config.chmod(0o600)
    assert "test" in ok(kargo_ui(server, home, "get", "stages"))  # the default file
    elsewhere = home / "other-config"
    shutil.copy(config, elsewhere)
    os.chmod(elsewhere, 0o640)
    proc = kargo_ui(server, home, "get", "stages", config=elsewhere)
    assert proc.returncode == 1 and "has mode 0640" in proc.stderr


def test_admins_manage_tokens_remotely(server, home):
    proc = kargo_ui(
        server, home, "create", "token", "ci", *PROJECT, "--role", "promoter", token="admin"
    )
    secret = ok(proc).strip()
    assert "not shown again" in proc.stderr
    listing = ok(kargo_ui(server, home, "get", "tokens", *PROJECT, token="admin"))
    assert "ci" in listing and "promoter" in listing and secret not in listing
    proc = kargo_ui(server, home, "get", "tokens", *PROJECT, token="viewer")
    assert proc.returncode == 1 and "needs the admin role" in proc.stderr
    env_token = {"KARGO_TOKEN": secret}
    base_url, _, _ = server
    run = subprocess.run(
        [str(KARGO_UI), "--server", base_url, "get", "warehouses", *PROJECT],
        env=clean_env(HOME=str(home), **env_token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "guestbook" in run.stdout
    assert ok(kargo_ui(server, home, "delete", "token", "ci", *PROJECT, token="admin")) == (
        "token/ci deleted\n"
    )
    run = subprocess.run(
        [str(KARGO_UI), "--server", base_url, "get", "warehouses", *PROJECT],
        env=clean_env(HOME=str(home), **env_token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "invalid or revoked token" in run.stderr
