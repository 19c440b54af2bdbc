"""Issue 6, item 12: the documented production settings pass Django's deployment check, and the
files holding secrets are created for the server's user only."""

import os
import stat
import subprocess
import sys

from tests.e2e.servers import ROOT, clean_env

PRODUCTION = {
    "DJANGO_SECRET_KEY": "x7Qm2vL9pR4tW8yB3nK6hJ1sD5fG0aZcXeVuIoPlMkNjHbGyTfRdEsWq",
    "DJANGO_ALLOWED_HOSTS": "kargo.example.com",
    "KARGO_HTTPS": "1",
    "KARGO_HSTS_INCLUDE_SUBDOMAINS": "1",
    "KARGO_HSTS_PRELOAD": "1",
}


def check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_env(KARGO_DATA_DIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
    )


def test_the_documented_production_settings_pass_check_deploy(tmp_path):
    done = check_deploy(tmp_path, **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_without_https_settings_check_deploy_complains(tmp_path):
    env = {**PRODUCTION, "KARGO_HTTPS": "0"}
    done = check_deploy(tmp_path, **env)
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr + done.stdout


def test_the_database_is_created_for_the_servers_user_only(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=clean_env(KARGO_DATA_DIR=str(tmp_path), DJANGO_SECRET_KEY="test"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for name in ("kargo_ui.sqlite3", "kargo_ui.sqlite3-wal", "kargo_ui.sqlite3-shm"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (tmp_path / "kargo_ui.sqlite3").exists()


def test_the_generated_secret_key_is_for_the_servers_user_only():
    # settings.py creates var/secret_key when no DJANGO_SECRET_KEY is set, and keeps it 0600.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='kargo_ui.settings'; django.setup()",
        ],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    key = ROOT / "var" / "secret_key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
