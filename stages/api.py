"""JSON API: the dashboard's actions for scripts, in the spirit of Kargo's REST `/v1beta1` routes.
Same permission checks as the pages (projects.access.Needs); errors are `{"error": "..."}` as in
Kargo. Authentication is an API token or the Django session (with its CSRF token for POSTs): see
projects.web.api_view."""

from django.http import Http404, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from freight.actions import do_approve
from freight.models import Freight
from projects.access import Needs, actor_of, get_project_for_request
from projects.export import to_manifest
from projects.queries import get_or_404
from projects.web import api_view, body_of

from . import actions
from .autopromotion import auto_promotion_answer
from .models import Promotion, Stage
from .queries import freight_by_key, newest_available


@require_GET
@api_view
def list_stages(request, project):
    project, _ = get_project_for_request(request, project)
    stages = Stage.objects.filter(project=project).select_related("project")
    return JsonResponse({"items": [to_manifest("Stage", s) for s in stages]})


@require_GET
@api_view
def get_promotion(request, project, name):
    project, _ = get_project_for_request(request, project)
    promotion = get_or_404(
        Promotion.objects.select_related("project"),
        f"promotion {name!r}",
        project=project,
        name=name,
    )
    return JsonResponse(to_manifest("Promotion", promotion))


@require_POST
@api_view
def promote(request, project, stage):
    """Body: exactly one of {"freight": name}, {"freightAlias": alias}, {"origin": "Warehouse/<name>"}."""
    project, _ = get_project_for_request(request, project, Needs.PROMOTE)
    stage = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
    data = body_of(request)
    given = [k for k in ("freight", "freightAlias", "origin") if data.get(k)]
    if len(given) != 1:
        raise ValueError("give exactly one of freight, freightAlias or origin")
    freight_qs = Freight.objects.filter(project=project)
    if given == ["freight"]:
        freight = get_or_404(freight_qs, "freight", name=data["freight"])
    elif given == ["freightAlias"]:
        freight = get_or_404(freight_qs, "freight", alias=data["freightAlias"])
    else:
        kind, _, origin = str(data["origin"]).partition("/")
        if kind != "Warehouse" or not origin:
            raise ValueError('origin must look like "Warehouse/<name>"')
        freight = newest_available(stage, origin)
        if freight is None:
            raise actions.PromotionError(
                f"no Freight from {data['origin']} is available to Stage {stage.name}"
            )
    promotion = actions.do_promote(stage, freight, actor_of(request))
    promotion = Promotion.objects.select_related("project").get(id=promotion.id)
    return JsonResponse(to_manifest("Promotion", promotion), status=201)


@require_POST
@api_view
def approve(request, project, freight):
    project, _ = get_project_for_request(request, project, Needs.APPROVE)
    obj = freight_by_key(project, freight)
    if obj is None:
        raise Http404(f"freight {freight!r} not found")
    stage = get_or_404(Stage.objects, "stage", project=project, name=request.GET.get("stage", ""))
    do_approve(obj, stage.name, actor_of(request))
    return JsonResponse({"approved": {"freight": obj.name, "stage": stage.name}})


@require_POST
@api_view
def refresh_stage(request, project, stage):
    project, _ = get_project_for_request(request, project, Needs.REFRESH)
    obj = get_or_404(Stage.objects.select_related("project"), "stage", project=project, name=stage)
    actions.do_refresh_stage(obj, actor_of(request))
    obj.refresh_from_db(fields=["annotations"])
    # Done when status.lastHandledRefresh equals this token (what `kargo refresh --wait` waits for).
    token = obj.annotations.get("kargo.akuity.io/refresh", "")
    return JsonResponse({"refreshRequested": f"Stage/{obj.name}", "token": token}, status=202)


@require_POST
@api_view
def reverify(request, project, stage):
    project, _ = get_project_for_request(request, project, Needs.REVERIFY)
    obj = get_or_404(Stage.objects.select_related("project"), "stage", project=project, name=stage)
    return JsonResponse(actions.do_reverify(obj, actor_of(request)))


@require_POST
@api_view
def abort_verification(request, project, stage):
    project, _ = get_project_for_request(request, project, Needs.ABORT_VERIFICATION)
    obj = get_or_404(Stage.objects.select_related("project"), "stage", project=project, name=stage)
    actions.do_abort_verification(obj, actor_of(request))
    return JsonResponse({"verificationAborted": f"Stage/{obj.name}"})


@require_POST
@api_view
def abort(request, project, name):
    project, _ = get_project_for_request(request, project, Needs.ABORT_PROMOTION)
    promotion = get_or_404(
        Promotion.objects.select_related("project"), "promotion", project=project, name=name
    )
    actions.do_abort(promotion, actor_of(request))
    promotion.refresh_from_db()
    return JsonResponse(to_manifest("Promotion", promotion))


@require_http_methods(["GET", "POST"])
@api_view
def auto_promotion(request, project, stage):
    """GET: whether the Stage auto-promotes and the holds in force (any member). POST
    {"enabled": true|false}: turn it on or off, which writes the project's ProjectConfig: an
    admin's change, as editing a ProjectConfig is in Kargo (and so a promoter cannot give
    themselves promotions nobody asked for)."""
    needed = Needs.READ if request.method == "GET" else Needs.MANAGE
    project, _ = get_project_for_request(request, project, needed)
    obj = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
    if request.method == "POST":
        enabled = body_of(request).get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError('give {"enabled": true} or {"enabled": false}')
        actions.do_set_auto_promotion(project, obj.name, enabled, actor_of(request))
        obj.refresh_from_db(fields=["status"])
    return JsonResponse(auto_promotion_answer(obj))
