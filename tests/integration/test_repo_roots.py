"""Steps and Warehouses refuse local repositories outside the allowed roots (real git demo)."""

from freight.models import Freight, Warehouse
from stages.actions import do_promote
from stages.models import Stage
from stages.tasks import reconcile


def test_a_step_may_not_touch_a_repository_outside_the_roots(demo, settings, tmp_path):
    settings.FILE_REPO_ROOTS = [str(tmp_path / "nowhere")]
    promotion = do_promote(Stage.objects.get(name="test"), Freight.objects.first(), actor="user:x")
    promotion.refresh_from_db()
    assert promotion.phase == "Errored"
    first = promotion.status["stepExecutionMetadata"][0]
    assert first["status"] == "Errored"
    assert "outside the directories this server allows" in first["message"]


def test_a_warehouse_may_not_read_a_repository_outside_the_roots(demo, settings, tmp_path):
    settings.FILE_REPO_ROOTS = [str(tmp_path / "nowhere")]
    Warehouse.objects.update(refresh_requested_at="2026-01-01T00:00:00Z")
    reconcile()
    healthy = next(
        c for c in Warehouse.objects.get().status["conditions"] if c["type"] == "Healthy"
    )
    assert healthy["status"] == "False"
    assert "outside the directories this server allows" in healthy["message"]
