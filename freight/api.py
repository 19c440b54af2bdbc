"""JSON API for Warehouses and Freight (see stages.api for the rest; same rules and the same
authentication, session or API token)."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from projects.access import Needs, actor_of, get_project_for_request
from projects.export import to_manifest
from projects.queries import get_or_404
from projects.web import api_view

from .actions import do_request_refresh
from .models import Freight, Warehouse


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
