"""The HTTP layer's world: project kargo-demo built in milliseconds through the ORM and the
project's own actions, with no git repository and no Celery task.

Two things keep git out:
- The Warehouse and the Stages are created through the ORM, not applied as manifests, so nothing
  enqueues discovery. Tests use `db` (one rolled-back transaction per test), where
  `transaction.on_commit` never fires: a promotion or a refresh asked for over HTTP is recorded,
  and its task is never started.
- Every repository URL is a local path outside the directories the server allows, so if a task
  ever does run (in a test that commits, as the websocket tests must), `check_repo_url` refuses
  it at once, with no git process and no network.

A test that needs a promotion to really run its steps belongs in tests/integration, on `demo`.

A module whose many tests share one expensive world builds it once with `shared_rows` (below):
committed before its first test, under the same rules (no on_commit, no git), and deleted after
its last; each test still runs on `db`, so its own writes roll back.
"""

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from freight.actions import do_create_freight
from freight.models import Freight, Warehouse
from kargo.specs import StageSpec, WarehouseSpec, dump
from projects.actions import do_create_project
from projects.models import Project
from stages.actions import do_init_stage_status
from stages.models import Stage
from tests.conftest import make_cast

APP_REPO = "file:///kargo-http-tests/not-allowed/guestbook-app.git"
GITOPS_REPO = "file:///kargo-http-tests/not-allowed/guestbook-gitops.git"
TAGS = ("v1.0.0", "v1.1.0", "v1.2.0")  # oldest first; the newest is the "freight" of the tests

# The demo's promotion template (kargo_ui/management/commands/demo.py), as JSON.
STEPS = [
    {
        "uses": "git-clone",
        "config": {
            "repoURL": "${{ vars.gitopsRepo }}",
            "checkout": [
                {"branch": "main", "path": "${{ vars.srcPath }}"},
                {"branch": "stage/${{ ctx.stage }}", "create": True, "path": "${{ vars.outPath }}"},
            ],
        },
    },
    {"uses": "git-clear", "config": {"path": "${{ vars.outPath }}"}},
    {
        "uses": "kustomize-set-image",
        "as": "update-image",
        "config": {
            "path": "${{ vars.srcPath }}/base",
            "images": [
                {"image": "${{ vars.imageRepo }}", "tag": "${{ commitFrom(vars.appRepo).Tag }}"}
            ],
        },
    },
    {
        "uses": "kustomize-build",
        "config": {
            "path": "${{ vars.srcPath }}/stages/${{ ctx.stage }}",
            "outPath": "${{ vars.outPath }}/manifests.yaml",
        },
    },
    {
        "uses": "git-commit",
        "as": "commit",
        "config": {"path": "${{ vars.outPath }}", "messageFromSteps": ["update-image"]},
    },
    {
        "uses": "git-push",
        "config": {"path": "${{ vars.outPath }}", "branch": "${{ vars.targetBranch }}"},
    },
]
VARS = [
    {"name": "gitopsRepo", "value": GITOPS_REPO},
    {"name": "appRepo", "value": APP_REPO},
    {"name": "imageRepo", "value": "demo/guestbook"},
    {"name": "srcPath", "value": "./src"},
    {"name": "outPath", "value": "./out"},
    {"name": "targetBranch", "value": "stage/${{ ctx.stage }}"},
]


def stage_spec(sources: dict) -> dict:
    """A demo Stage's spec, stored as `apply` stores it: validated, with Kargo's defaults."""
    raw = {
        "requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": "guestbook"}, "sources": sources}
        ],
        "promotionTemplate": {"spec": {"vars": VARS, "steps": STEPS}},
    }
    return dump(StageSpec.model_validate(raw))


@pytest.fixture
def project(db, data_dir) -> Project:
    """kargo-demo: Warehouse guestbook, Stages test -> uat -> prod and Freight for v1.0.0,
    v1.1.0 and v1.2.0 (newest), as `manage.py demo` leaves it before any promotion."""
    return build_project()


def build_project() -> Project:
    """The `project` fixture's world (see there), for a test or for `shared_rows`."""
    project = do_create_project("kargo-demo", actor="fixture")
    warehouse_spec = {
        "interval": "30s",
        "subscriptions": [
            {
                "git": {
                    "repoURL": APP_REPO,
                    "commitSelectionStrategy": "SemVer",
                    "semverConstraint": ">=1.0.0",
                    "discoveryLimit": 10,
                }
            }
        ],
    }
    Warehouse.objects.create(
        project=project,
        name="guestbook",
        spec=dump(WarehouseSpec.model_validate(warehouse_spec)),
    )
    for name, sources in (
        ("test", {"direct": True}),
        ("uat", {"stages": ["test"]}),
        ("prod", {"stages": ["uat"]}),
    ):
        stage = Stage.objects.create(project=project, name=name, spec=stage_spec(sources))
        do_init_stage_status(stage)
    now = timezone.now()
    for age, tag in zip((2, 1, 0), TAGS, strict=True):
        do_create_freight(
            project,
            "guestbook",
            commits=[
                {
                    "repoURL": APP_REPO,
                    "id": hashlib.sha1(tag.encode()).hexdigest(),
                    "tag": tag,
                    "message": f"Release {tag}",
                }
            ],
            actor="fixture",
            discovered_at=now - timedelta(hours=age),
        )
    return project


@pytest.fixture
def freight(project) -> Freight:
    """The newest Freight (v1.2.0)."""
    return Freight.objects.filter(project=project).first()


@pytest.fixture
def users(django_user_model, project):
    """The fixed cast (alice admin, bob promoter, carol viewer, dave outsider) on the cheap project."""
    return make_cast(django_user_model, project)


def _never(func, using=None, robust=False):
    """transaction.on_commit while shared rows are built: as under `db`, nothing fires."""


@pytest.fixture(scope="module")
def shared_rows(django_db_setup, django_db_blocker, tmp_path_factory):
    """`build(make)` runs `make()` once for the module and commits the rows it creates; after the
    module's last test every row created since this fixture started is deleted, and the database
    is checked to hold again exactly the rows it held before.

    `make` runs as a `db` test would: in a transaction whose on_commit callbacks never fire (no
    task, no broadcast), with DATA_DIR a fresh directory and the tests' fast password hasher.
    The module's tests must still ask for `db` (and so roll back their own writes), must not
    change these rows outside that transaction, and must load the rows they use afresh (an
    object kept from `make` carries the attributes of the test that used it last). The module
    must have no test on `transactional_db`: it would run while the rows exist and flush them."""
    models = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]

    def pks() -> dict:
        return {m: set(m._base_manager.values_list("pk", flat=True)) for m in models}

    with django_db_blocker.unblock():
        before = pks()

    def build(make: Callable):
        data = tmp_path_factory.mktemp("shared") / "var"
        data.mkdir()
        with (
            django_db_blocker.unblock(),
            override_settings(
                DATA_DIR=data,
                PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            ),
            pytest.MonkeyPatch.context() as patch,
            transaction.atomic(),
        ):
            patch.setattr(transaction, "on_commit", _never)
            return make()

    yield build
    with django_db_blocker.unblock():
        for model in models:
            model._base_manager.exclude(pk__in=before[model]).delete()
        assert pks() == before, "shared rows left behind"


@pytest.fixture
def demo():
    pytest.fail(
        "tests/http must not build the git demo (seconds a test): use the `project` fixture, "
        "or move a test that needs real repositories to tests/integration"
    )
