"""Read paths of Warehouses and Freight, tuned for the pages."""

from projects.models import Project

from .models import Freight, FreightCount


def freight_total(project: Project) -> int:
    """How much Freight the project holds: its maintained count (FreightCount), one read by
    primary key, not a COUNT over its Freight. A project whose Freight was never created or
    deleted one at a time (none yet, or only bulk-inserted) has no count: its rows are counted."""
    total = (
        FreightCount.objects.filter(project_id=project.id).values_list("total", flat=True).first()
    )
    return Freight.objects.filter(project_id=project.id).count() if total is None else total
