from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .access import projects_for_user


@login_required
def projects(request: HttpRequest) -> HttpResponse:
    rows = (
        projects_for_user(request.user)
        .annotate(
            stage_count=Count("stages", distinct=True),
            warehouse_count=Count("warehouses", distinct=True),
        )
        .order_by("name")
    )
    return render(request, "projects.html", {"projects": rows})


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
