import os
import re
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from kargo_ui.celery import app as celery_app

# Tasks run inline in tests, and a broken task fails the test instead of passing silently.
celery_app.conf.task_always_eager = True
celery_app.conf.task_eager_propagates = True

_skipped: list[str] = []

TESTS = Path(__file__).parent
# Each directory under tests/ is a layer, marked by where its tests live, so that
# `pytest -m "unit or http"` runs the fast layers and `-m "integration or conformance"` the slow.
LAYERS = ("unit", "http", "integration", "conformance", "e2e")
# What a unit test may not ask for: a database, or the demo that builds git repositories.
NOT_IN_UNIT = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
    "demo",
    "users",
}
_UNIT_BREACH = pytest.StashKey[str]()


def layer_of(item) -> str | None:
    try:
        relative = Path(item.path).relative_to(TESTS)
    except ValueError:
        return None
    layer = relative.parts[0] if len(relative.parts) > 1 else None
    return layer if layer in LAYERS else None


def layer_selected(markexpr: str, layer: str) -> bool | None:
    """Whether `-m markexpr` can select tests of `layer`, when the expression names layers only
    (as scripts/test.sh's do): a layer's tests carry that layer's marker and no other layer's.
    None when the expression names anything else, which only the tests themselves can answer."""
    words = re.findall(r"[()]|[^\s()]+", markexpr)
    if not words or not set(words) <= {*LAYERS, "and", "or", "not", "(", ")"}:
        return None
    python = " ".join(str(w == layer) if w in LAYERS else w for w in words)
    try:
        return bool(eval(python, {"__builtins__": {}}))  # only True, False, and, or, not, ( )
    except SyntaxError:
        return None  # pytest reports the bad expression itself


def pytest_ignore_collect(collection_path, config):
    # `-m "unit or http"` would import every module of the other layers only to deselect all
    # their tests (seconds, mostly hypothesis and playwright): leave those directories alone.
    if collection_path.parent == TESTS and collection_path.name in LAYERS:
        if layer_selected(config.getoption("markexpr") or "", collection_path.name) is False:
            return True
    return None


def pytest_collection_modifyitems(config, items):
    outside = [
        i.nodeid for i in items if layer_of(i) is None and Path(i.path).is_relative_to(TESTS)
    ]
    if outside:
        # No layer's -m selects these, so scripts/test.sh would never run them.
        raise pytest.UsageError(
            f"tests outside a layer directory (tests/{{{','.join(LAYERS)}}}/): {', '.join(outside)}"
        )
    for item in items:
        layer = layer_of(item)
        if layer is None:
            continue
        item.add_marker(layer)
        if layer == "unit":
            wanted = NOT_IN_UNIT.intersection(item.fixturenames)
            if wanted or item.get_closest_marker("django_db"):
                item.stash[_UNIT_BREACH] = (
                    f"{item.nodeid} is a unit test but uses "
                    f"{', '.join(sorted(wanted)) or 'the django_db marker'}: unit tests touch "
                    "no database and no git; move it to tests/http or tests/integration"
                )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Fail before any fixture is set up, so the breach costs nothing and says what to do.
    breach = item.stash.get(_UNIT_BREACH, None)
    if breach:
        pytest.fail(breach, pytrace=False)


class _NoGitPopen(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        argv = args.split() if isinstance(args, str) else list(args) if args else []
        if argv and Path(os.fsdecode(argv[0])).name == "git":
            raise AssertionError(
                f"unit tests run no git ({' '.join(map(str, argv[:3]))} ...); "
                "a test that needs git belongs in tests/integration"
            )
        super().__init__(args, *rest, **kwargs)


@pytest.fixture(autouse=True)
def _unit_tests_run_no_git(request, monkeypatch):
    if request.node.get_closest_marker("unit") is not None:
        monkeypatch.setattr(subprocess, "Popen", _NoGitPopen)


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(
            f"{report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}"
        )


def pytest_sessionfinish(session, exitstatus):
    # In the README's test command (KARGO_NO_SKIPS=1) a skipped test means a missing dependency,
    # which must fail the run rather than pass it quietly.
    if os.environ.get("KARGO_NO_SKIPS") == "1" and _skipped:
        print("\nskipped tests are not allowed in the full run:\n  " + "\n  ".join(_skipped))
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Django's PBKDF2 takes about half a second a password here; the cast alone has four.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "var"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


@pytest.fixture
def demo(transactional_db, data_dir):
    """The seeded kargo-demo project: real git repositories, a Warehouse and test -> uat -> prod,
    before any promotion (without the demo's auto-promotion of test)."""
    from django.core.management import call_command

    from projects.models import Project

    call_command(
        "demo",
        "--no-auto-promotion",
        "--no-verification",
        "--no-registry",
        stdout=open(os.devnull, "w"),
    )
    return Project.objects.get(name="kargo-demo")


def make_cast(django_user_model, project) -> dict:
    """The fixed cast on a project: alice admin, bob promoter, carol viewer, dave outsider."""
    from projects.actions import do_set_membership

    cast = {}
    for name, role in (
        ("alice", "admin"),
        ("bob", "promoter"),
        ("carol", "viewer"),
        ("dave", None),
    ):
        user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-" + name)
        if role:
            do_set_membership(project, user, role)
        cast[name] = user
    return cast


@pytest.fixture
def users(django_user_model, demo):
    """The fixed cast on the seeded demo (tests/http has its own, on a project without git)."""
    return make_cast(django_user_model, demo)


def git_show(repo, ref: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"{ref}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def git_log_subject(repo, ref: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "log", "-1", "--format=%B", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def User():
    return get_user_model()
