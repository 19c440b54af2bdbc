"""fail, set-freight-alias and set-metadata against the database, and freightMetadata() /
stageMetadata() read back in a real promotion."""

import pytest
from django.utils import timezone

from freight.models import Freight
from projects.models import Project
from stages.actions import do_promote
from stages.models import Stage
from stages.steps import StepError
from stages.steps.set_metadata import metadata_function

from .test_steps import make_ctx, run


@pytest.fixture
def project(db):
    project = Project.objects.create(name="ctl")
    for name, alias in (("f1", "first"), ("f2", "second")):
        Freight.objects.create(
            project=project, name=name, alias=alias, origin_name="w", discovered_at=timezone.now()
        )
    Stage.objects.create(project=project, name="test")
    return project


def test_fail_ends_failed_with_its_message(tmp_path):
    ctx = make_ctx(tmp_path)
    assert run(ctx, "fail", {"message": "not today"}).message == "failed: not today"
    result = run(ctx, "fail", {})
    assert (result.status, result.message) == ("Failed", "failed")


def test_set_freight_alias(tmp_path, project):
    ctx = make_ctx(tmp_path, project="ctl", project_id=project.id)
    result = run(ctx, "set-freight-alias", {"name": "f1", "alias": "golden"})
    assert result.message == "updated alias of Freight 'f1' from 'first' to 'golden'"
    freight = Freight.objects.get(project=project, name="f1")
    assert freight.alias == "golden"
    assert freight.labels["kargo.akuity.io/alias"] == "golden"
    taken = run(ctx, "set-freight-alias", {"name": "f1", "alias": "second"})
    assert taken.status == "Failed"
    assert "alias 'second' is already used by other Freight" in taken.message
    assert Freight.objects.get(project=project, name="f1").alias == "golden"
    missing = run(ctx, "set-freight-alias", {"name": "nope", "alias": "x"})
    assert (missing.status, missing.message) == (
        "Failed",
        "freight 'nope' not found in project 'ctl'",
    )


def test_set_metadata_upserts_and_reads_back(tmp_path, project):
    ctx = make_ctx(tmp_path, project="ctl", project_id=project.id)
    Freight.objects.filter(project=project, name="f1").update(
        status={"currentlyIn": {"test": {}}, "metadata": {"keep": 1, "old": "x"}}
    )
    run(
        ctx,
        "set-metadata",
        {
            "updates": [
                {"kind": "Freight", "name": "f1", "values": {"old": "y", "build": {"n": 7}}},
                {"kind": "Stage", "name": "test", "values": {"owner": "ops"}},
            ]
        },
    )
    freight = Freight.objects.get(project=project, name="f1")
    assert freight.status == {
        "currentlyIn": {"test": {}},
        "metadata": {"keep": 1, "old": "y", "build": {"n": 7}},
    }
    assert Stage.objects.get(project=project, name="test").status["metadata"] == {"owner": "ops"}
    freight_metadata = metadata_function("Freight", project.id)
    stage_metadata = metadata_function("Stage", project.id)
    assert freight_metadata("f1", "build") == {"n": 7}
    assert freight_metadata("f1")["keep"] == 1
    assert freight_metadata("f2") is None and freight_metadata("gone") is None
    assert freight_metadata("f1", "absent") is None
    assert stage_metadata("test", "owner") == "ops"


def test_set_metadata_is_all_or_nothing(tmp_path, project):
    ctx = make_ctx(tmp_path, project="ctl", project_id=project.id)
    with pytest.raises(StepError, match="error getting Stage: 'missing' not found"):
        run(
            ctx,
            "set-metadata",
            {
                "updates": [
                    {"kind": "Freight", "name": "f1", "values": {"a": 1}},
                    {"kind": "Stage", "name": "missing", "values": {"a": 1}},
                ]
            },
        )
    assert "metadata" not in Freight.objects.get(project=project, name="f1").status
    with pytest.raises(StepError, match="key must not be empty"):
        run(
            ctx, "set-metadata", {"updates": [{"kind": "Stage", "name": "test", "values": {"": 1}}]}
        )


def test_a_promotion_sets_metadata_reads_it_back_and_fails(demo, data_dir):
    stage = Stage.objects.get(project=demo, name="test")
    freight = Freight.objects.filter(project=demo).first()
    steps = [
        {
            "uses": "set-metadata",
            "config": {
                "updates": [
                    {
                        "kind": "Freight",
                        "name": "${{ ctx.targetFreight.name }}",
                        "values": {"ticket": "OPS-1"},
                    },
                    {"kind": "Stage", "name": "${{ ctx.stage }}", "values": {"n": 2}},
                ]
            },
        },
        {
            "uses": "compose-output",
            "as": "read",
            "config": {
                "ticket": "${{ freightMetadata(ctx.targetFreight.name, 'ticket') }}",
                "all": "${{ freightMetadata(ctx.targetFreight.name) }}",
                "n": "${{ stageMetadata(ctx.stage, 'n') + 1 }}",
                "none": "${{ stageMetadata('nope') ?? 'none' }}",
            },
        },
        {
            "uses": "set-freight-alias",
            "config": {"name": "${{ ctx.targetFreight.name }}", "alias": "renamed"},
        },
        {"uses": "fail", "config": {"message": "ticket ${{ outputs.read.ticket }}"}},
        {"uses": "compose-output", "as": "never", "config": {"x": 1}},
    ]
    spec = {**stage.spec, "promotionTemplate": {"spec": {"steps": steps}}}
    Stage.objects.filter(id=stage.id).update(spec=spec)
    stage.refresh_from_db()
    promotion = do_promote(stage, freight, actor="user:tester")
    promotion.refresh_from_db()
    assert promotion.phase == "Failed", promotion.message
    assert promotion.message == "step step-4 (fail) failed: failed: ticket OPS-1"
    assert promotion.status["state"]["read"] == {
        "ticket": "OPS-1",
        "all": {"ticket": "OPS-1"},
        "n": 3,
        "none": "none",
    }
    statuses = [m["status"] for m in promotion.status["stepExecutionMetadata"]]
    assert statuses == ["Succeeded", "Succeeded", "Succeeded", "Failed", "Skipped"]
    freight.refresh_from_db()
    assert freight.status["metadata"] == {"ticket": "OPS-1"}
    assert freight.alias == "renamed"
