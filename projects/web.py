"""What every app's views and JSON API share: the htmx partial rule, user-facing errors, the
API's authentication (session or bearer token) and its JSON error envelope."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django_htmx.http import reswap

from kargo import jsonio

from .access import actor_of
from .audit import audit_context, client_address
from .models import Surface
from .tokens import TokenError, authenticate

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


class _CsrfCheck(CsrfViewMiddleware):
    # Django's own check, answering with the reason instead of its HTML 403 page.
    def _reject(self, request, reason):
        return reason


def csrf_failure(request: HttpRequest) -> str | None:
    """Why the request fails Django's CSRF check, or None when it passes (safe methods do)."""
    check = _CsrfCheck(lambda request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def api_view(view):
    """The JSON API's front door. A request authenticates with `Authorization: Bearer <token>`
    (projects.tokens; no CSRF check, since a browser never adds that header on its own) or with
    the session, which must then pass the CSRF check as the pages do. A token stands for itself:
    whatever session cookie comes with it is ignored. Views find the caller's role with
    projects.access.get_project_for_request.

    Errors are JSON, as Kargo's REST API gives them, instead of redirects and HTML pages. Every
    domain error of the actions (PromotionError, FreightError, ...) is a ValueError: a 400."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        request.api_token = None
        header = request.headers.get("Authorization", "")
        if header.partition(" ")[0].lower() == "bearer":
            try:
                request.api_token = authenticate(header)
            except TokenError as exc:
                return JsonResponse(
                    {"error": str(exc)}, status=401, headers={"WWW-Authenticate": "Bearer"}
                )
            request.user = AnonymousUser()
        elif not request.user.is_authenticated:
            # Another scheme (a proxy's Basic auth, say) is not ours: the session decides.
            error = "send Authorization: Bearer <token>" if header else "authentication required"
            return JsonResponse(
                {"error": error}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        else:
            reason = csrf_failure(request)
            if reason:
                return JsonResponse({"error": f"CSRF check failed: {reason}"}, status=403)
        try:
            # The API's changes are the API's, whichever middleware saw the request first.
            with audit_context(Surface.API, client_address(request), actor_of(request)):
                return view(request, *args, **kwargs)
        except RequestDataTooBig:
            return JsonResponse({"error": "request body too large"}, status=413)
        except Http404 as exc:
            return JsonResponse({"error": str(exc) or "not found"}, status=404)
        except PermissionDenied as exc:
            return JsonResponse({"error": str(exc) or "forbidden"}, status=403)
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)

    # The middleware's check would refuse token requests; the wrapper checks sessions itself.
    return csrf_exempt(wrapper)


# The API's bodies are a few fields ({"freight": ...}); manifests have their own endpoint.
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32


def body_of(request: HttpRequest) -> dict:
    """The request's JSON object, bounded in size and nesting before it is parsed."""
    raw = request.body or b"{}"
    if len(raw) > MAX_JSON_BYTES:
        raise RequestDataTooBig(f"request body over {MAX_JSON_BYTES} bytes")
    try:
        data = jsonio.loads(raw, max_bytes=MAX_JSON_BYTES, max_depth=MAX_JSON_DEPTH)
    except jsonio.JSONInputError as exc:
        raise ValueError(f"request body: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data
