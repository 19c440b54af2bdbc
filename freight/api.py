"""JSON API for Warehouses and Freight (see stages.api for the rest; same rules and the same
authentication, session or API token)."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from projects.access import Needs, actor_of, get_project_for_request
from projects.export import to_manifest
from projects.queries import get_or_404
from projects.web import api_view, body_of

from .actions import do_assemble_freight, do_request_refresh
from .models import Freight, Warehouse
from .queries import picks_by_name


@require_GET
@api_view
def list_freight(request, project):
    project, _ = get_project_for_request(request, project)
    limit = min(int(request.GET.get("limit", "100")), 1000)
    freight = Freight.objects.filter(project=project).select_related("project")[:limit]
    return JsonResponse({"items": [to_manifest("Freight", f) for f in freight]})


@require_POST
@api_view
def refresh_warehouse(request, project, warehouse):
    project, _ = get_project_for_request(request, project, Needs.REFRESH)
    obj = get_or_404(
        Warehouse.objects.select_related("project"), "warehouse", project=project, name=warehouse
    )
    do_request_refresh(obj, actor_of(request))
    return JsonResponse({"refreshRequested": f"Warehouse/{obj.name}"}, status=202)


@require_POST
@api_view
def create_freight(request, project, warehouse):
    """Freight put together from what the Warehouse discovered: {"artifacts": {"<subscription>":
    "<artifact>"}, "alias": "<optional>"} (freight.queries.picks_by_name says how each is
    named). 201 with the new Freight; 200 with the Freight those artifacts already make."""
    project, _ = get_project_for_request(request, project, Needs.PROMOTE)
    obj = get_or_404(
        Warehouse.objects.select_related("project"), "warehouse", project=project, name=warehouse
    )
    body = body_of(request)
    picks = picks_by_name(obj, body.get("artifacts"))
    alias = body.get("alias") or ""
    if not isinstance(alias, str):
        raise ValueError("alias must be a string")
    freight, created = do_assemble_freight(obj, picks, actor_of(request), alias)
    return JsonResponse(to_manifest("Freight", freight), status=201 if created else 200)
