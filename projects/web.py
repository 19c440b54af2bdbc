"""What every app's views and JSON API share: the htmx partial rule, user-facing errors, the
API's JSON error envelope."""

import json
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django_htmx.http import reswap

# The one page template; its live regions are inline partials (`project.html#flash`, ...).
PAGE = "project.html"


def htmx_partial(request: HttpRequest) -> bool:
    """Answer with a fragment: an htmx request that is not a boosted navigation."""
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted


def user_error(request: HttpRequest, message: str, back: str) -> HttpResponse:
    """User errors come back as a visible message, never a 500."""
    if htmx_partial(request):
        # 422 is swapped (see htmx-config in base.html); "none" keeps the target as it is and
        # the message arrives out of band in #flash.
        response = render(request, f"{PAGE}#flash", {"flash_error": message}, status=422)
        return reswap(response, "none")
    messages.error(request, message)
    return redirect(back)


def api_view(view):
    """JSON errors, as Kargo's REST API gives them, instead of redirects and HTML pages. Every
    domain error of the actions (PromotionError, FreightError, ...) is a ValueError: a 400."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "authentication required"}, status=401)
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return JsonResponse({"error": str(exc) or "not found"}, status=404)
        except PermissionDenied as exc:
            return JsonResponse({"error": str(exc) or "forbidden"}, status=403)
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)

    return wrapper


def body_of(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data
