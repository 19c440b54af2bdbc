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
"""

import hashlib
from datetime import timedelta

import pytest
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


@pytest.fixture
def demo():
    pytest.fail(
        "tests/http must not build the git demo (seconds a test): use the `project` fixture, "
        "or move a test that needs real repositories to tests/integration"
    )
