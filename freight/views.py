"""Warehouse and Freight actions on the project page that need nothing of the Stages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from projects.access import actor_of, get_project_for_user
from projects.models import Role
from projects.queries import get_or_404
from projects.web import PAGE, htmx_partial

from .actions import do_request_refresh
from .models import Warehouse


@login_required
@require_POST
def refresh_warehouse(request: HttpRequest, name: str, warehouse: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name, Role.PROMOTER)
    obj = get_or_404(Warehouse.objects, f"warehouse {warehouse!r}", project=project, name=warehouse)
    do_request_refresh(obj, actor_of(request))
    if htmx_partial(request):
        return render(request, f"{PAGE}#flash", {"flash_info": f"Refresh of {obj.name} requested."})
    return redirect(reverse("project", args=[project.name]))
