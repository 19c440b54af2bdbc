"""Project page views: thin, typed, permission-checked. Full page on a normal request, the drawer
partial on an htmx request (progressive enhancement: every link and form works without JS)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import push_url

from freight.actions import FreightError, do_approve, do_assemble_freight
from freight.models import Freight, Warehouse
from freight.queries import assembly_choices
from projects.access import Needs, actor_of, get_project_for_user
from projects.queries import get_or_404
from projects.web import PAGE, htmx_partial, user_error

from . import actions, fragments
from .models import AnalysisRun, Promotion, Stage
from .queries import freight_by_key


def render_drawer(
    request: HttpRequest, project, role: str, partial: str, extra: dict, url: str
) -> HttpResponse:
    if htmx_partial(request) and request.htmx.target == "drawer":
        return push_url(render(request, f"{PAGE}#{partial}", {"project": project, **extra}), url)
    ctx = {
        **fragments.page_context(project, role, csrf_token=get_token(request)),
        **extra,
        "drawer": partial,
    }
    return render(request, PAGE, ctx)


@login_required
def project_page(request: HttpRequest, name: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name)
    jump = request.GET.get("stage", "").strip()
    if jump:
        # The overview's "Jump to" form opens that Stage's drawer.
        stage = Stage.objects.filter(project=project, name=jump).first()
        if stage is None:
            message = f"No Stage named {jump[:100]!r} in project {project.name}."
            return user_error(request, message, reverse("project", args=[project.name]))
        return redirect(reverse("stage", args=[project.name, stage.name]))
    # Timeline paging: ?before=<freight name> shows the Freight older than that one. An unknown
    # name shows the newest page.
    ctx = fragments.page_context(
        project, role, before=request.GET.get("before", ""), csrf_token=get_token(request)
    )
    if htmx_partial(request) and request.htmx.target == "timeline":
        return render(request, f"{PAGE}#timeline", ctx)
    return render(request, PAGE, ctx)


@login_required
def stage_page(request: HttpRequest, name: str, stage: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name)
    obj = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
    return render_drawer(
        request,
        project,
        role,
        "stage-drawer",
        fragments.stage_context(project, obj, role),
        request.path,
    )


@login_required
def freight_page(request: HttpRequest, name: str, freight: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name)
    obj = freight_by_key(project, freight)
    if obj is None:
        raise Http404(f"freight {freight!r} not found")
    return render_drawer(
        request,
        project,
        role,
        "freight-drawer",
        fragments.freight_context(project, obj, role),
        request.path,
    )


@login_required
def promotion_page(request: HttpRequest, name: str, promotion: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name)
    obj = get_or_404(
        Promotion.objects.select_related("stage"),
        f"promotion {promotion!r}",
        project=project,
        name=promotion,
    )
    return render_drawer(
        request,
        project,
        role,
        "promotion-drawer",
        fragments.promotion_context(obj, role),
        request.path,
    )


@login_required
@require_POST
def promote(request: HttpRequest, name: str, stage: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name, Needs.PROMOTE)
    obj = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
    back = reverse("stage", args=[project.name, obj.name])
    freight = Freight.objects.filter(project=project, name=request.POST.get("freight", "")).first()
    if freight is None:
        return user_error(request, "Choose the Freight to promote.", back)
    try:
        promotion = actions.do_promote(obj, freight, actor=actor_of(request))
    except actions.PromotionError as exc:
        return user_error(request, str(exc), back)
    url = reverse("promotion", args=[project.name, promotion.name])
    if htmx_partial(request):
        promotion = Promotion.objects.select_related("stage").get(id=promotion.id)
        ctx = {"project": project, **fragments.promotion_context(promotion, role)}
        return push_url(render(request, f"{PAGE}#promotion-drawer", ctx), url)
    return redirect(url)


@login_required
@require_POST
def approve(request: HttpRequest, name: str, freight: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name, Needs.APPROVE)
    obj = get_or_404(Freight.objects, f"freight {freight!r}", project=project, name=freight)
    back = reverse("freight", args=[project.name, obj.name])
    stage = Stage.objects.filter(project=project, name=request.POST.get("stage", "")).first()
    if stage is None:
        return user_error(request, "Choose the Stage to approve the Freight for.", back)
    do_approve(obj, stage.name, actor_of(request))
    if htmx_partial(request):
        obj.refresh_from_db()
        return render(
            request,
            f"{PAGE}#freight-drawer",
            {"project": project, **fragments.freight_context(project, obj, role)},
        )
    return redirect(back)


@login_required
@require_POST
def abort(request: HttpRequest, name: str, promotion: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name, Needs.ABORT_PROMOTION)
    obj = get_or_404(
        Promotion.objects.select_related("stage"),
        f"promotion {promotion!r}",
        project=project,
        name=promotion,
    )
    back = reverse("promotion", args=[project.name, obj.name])
    try:
        actions.do_abort(obj, actor_of(request))
    except actions.PromotionError as exc:
        return user_error(request, str(exc), back)
    if htmx_partial(request):
        obj.refresh_from_db()
        return render(
            request,
            f"{PAGE}#promotion-drawer",
            {"project": project, **fragments.promotion_context(obj, role)},
        )
    return redirect(back)


@login_required
@require_POST
def refresh_stage(request: HttpRequest, name: str, stage: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name, Needs.REFRESH)
    obj = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
    actions.do_refresh_stage(obj, actor_of(request))
    if htmx_partial(request):
        return render(request, f"{PAGE}#flash", {"flash_info": f"Refresh of {obj.name} requested."})
    return redirect(reverse("stage", args=[project.name, obj.name]))


@login_required
def analysisrun_page(request: HttpRequest, name: str, run: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, name)
    obj = get_or_404(
        AnalysisRun.objects.select_related("project", "stage"),
        f"AnalysisRun {run!r}",
        project=project,
        name=run,
    )
    return render_drawer(
        request, project, role, "run-drawer", fragments.run_context(obj, role), request.path
    )


def verification_view(needs: str, act):
    """Reverify and abort verification from the Stage's drawer: the drawer comes back (htmx),
    or the Stage's page; a Stage with nothing to verify or abort says why."""

    @login_required
    @require_POST
    def view(request: HttpRequest, name: str, stage: str) -> HttpResponse:
        project, role = get_project_for_user(request.user, name, needs)
        obj = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
        back = reverse("stage", args=[project.name, obj.name])
        try:
            act(obj, actor_of(request))
        except actions.PromotionError as exc:
            return user_error(request, str(exc), back)
        if htmx_partial(request):
            obj.refresh_from_db()
            ctx = {"project": project, **fragments.stage_context(project, obj, role)}
            return render(request, f"{PAGE}#stage-drawer", ctx)
        return redirect(back)

    return view


reverify = verification_view(Needs.REVERIFY, actions.do_reverify)
abort_verification = verification_view(Needs.ABORT_VERIFICATION, actions.do_abort_verification)


@login_required
@require_POST
def auto_promotion(request: HttpRequest, name: str, stage: str) -> HttpResponse:
    """Turn the Stage's auto-promotion on or off (an admin's change: it writes the project's
    ProjectConfig), from the Stage's drawer."""
    project, role = get_project_for_user(request.user, name, Needs.MANAGE)
    obj = get_or_404(Stage.objects, f"stage {stage!r}", project=project, name=stage)
    back = reverse("stage", args=[project.name, obj.name])
    wanted = request.POST.get("enabled", "")
    if wanted not in ("on", "off"):
        return user_error(request, "Say whether to turn auto-promotion on or off.", back)
    actions.do_set_auto_promotion(project, obj.name, wanted == "on", actor_of(request))
    if htmx_partial(request):
        obj.refresh_from_db()
        ctx = {"project": project, **fragments.stage_context(project, obj, role)}
        return render(request, f"{PAGE}#stage-drawer", ctx)
    return redirect(back)


@login_required
def assemble_freight(request: HttpRequest, name: str, warehouse: str) -> HttpResponse:
    """Put Freight together by hand from what the Warehouse discovered (GET: the form in the
    drawer; POST: create it, then show it). A promoter's action, as promoting is."""
    project, role = get_project_for_user(request.user, name, Needs.PROMOTE)
    obj = get_or_404(Warehouse.objects, f"warehouse {warehouse!r}", project=project, name=warehouse)
    url = reverse("assemble-freight", args=[project.name, obj.name])
    if request.method == "POST":
        picks = {}
        for key, value in request.POST.items():
            if key.startswith("sub-") and key[4:].isdigit():
                picks[int(key[4:])] = value.strip()
        try:
            freight, created = do_assemble_freight(
                obj, picks, actor_of(request), request.POST.get("alias", "").strip()
            )
        except FreightError as exc:
            return user_error(request, str(exc), url)
        if htmx_partial(request):
            ctx = {"project": project, **fragments.freight_context(project, freight, role)}
            response = render(request, f"{PAGE}#freight-drawer", ctx)
            if not created:
                # Out of band, into #flash: the same artifacts made this Freight before.
                note = {"flash_info": f"Freight {freight.alias} has exactly these artifacts."}
                response.content += render(request, f"{PAGE}#flash", note).content
            return push_url(response, reverse("freight", args=[project.name, freight.name]))
        return redirect(reverse("freight", args=[project.name, freight.name]))
    ctx = {
        "warehouse": obj,
        "choices": assembly_choices(obj),
        "base": fragments.project_base(project),
    }
    return render_drawer(request, project, role, "assemble-drawer", ctx, url)
