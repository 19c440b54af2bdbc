"""The webhook receiver endpoint, `POST /webhook/<kind>/<digest>`, and the ProjectConfig status
that tells users its URLs (Kargo's external webhook server, pkg/webhook/external/router.go).

The endpoint needs no login and no CSRF token (senders are machines), so it trusts nothing but
the receiver's proof (freight.webhooks): the path must be one a ProjectConfig's status names,
re-derived from the receiver's current secret, and the delivery must carry the sender's
signature or token. Only then does the body get parsed, and only then does anything change: the
project's Warehouses subscribed to the repository get a refresh (freight.actions
do_request_refresh, which starts their discovery when the transaction commits), and the
delivery is recorded as an event. The answer comes at once, before discovery runs.

A receiver's path is derived from its secret, so it works as a credential for the senders that
sign nothing (Docker Hub, Quay, Azure, generic): it is never logged, and Django's own log line
for a 4xx answer is replaced by one without it.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from kargo.conditions import condition, set_condition
from kargo.specs.project import WebhookReceiver
from projects.actions import record_event
from projects.audit import audit_context, client_address
from projects.credentials import generic
from projects.live import broadcast_on_commit
from projects.models import ProjectConfig, Surface

from .actions import do_request_refresh
from .models import Warehouse
from .webhooks import (
    KINDS,
    MAX_BODY_BYTES,
    Delivery,
    Event,
    Target,
    WebhookError,
    parse_delivery,
    plan_generic,
    receiver_details,
    receiver_kind,
    secret_name,
    secret_value,
    should_refresh,
    subscribed_urls,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- status


def receivers_status(config: ProjectConfig) -> tuple[list[dict], list[str]]:
    """status.webhookReceivers[] {name, path, url} for a ProjectConfig, and the problems of the
    receivers that could not be listed (no Secret, no key in it): those name the receiver, the
    Secret and the key, never a value."""
    details, errors = [], []
    project = config.project
    for receiver in config.typed_spec.webhookReceivers or []:
        try:
            kind = receiver_kind(receiver)
            name = secret_name(receiver)
            data = generic(project.id, name)
            if data is None:
                raise ValueError(f"generic Secret {name!r} not found in project {project.name}")
            secret = secret_value(kind, data)
        except ValueError as exc:
            errors.append(f"error syncing WebhookReceiver {receiver.name!r}: {exc}")
            continue
        details.append(receiver_details(project.name, receiver, secret, settings.KARGO_PUBLIC_URL))
    return details, errors


def do_sync_webhook_receivers(config: ProjectConfig) -> None:
    """Write status.webhookReceivers and the Ready condition as Kargo's ProjectConfig reconciler
    does (syncWebhookReceivers); nothing is written when nothing changed."""
    with transaction.atomic():
        config = (
            ProjectConfig.objects.select_for_update().select_related("project").get(id=config.id)
        )
        details, errors = receivers_status(config)
        status = dict(config.status or {})
        if config.typed_spec.webhookReceivers:
            status["webhookReceivers"] = details
        else:
            status.pop("webhookReceivers", None)
        if errors:
            ready = condition(
                "Ready",
                False,
                "SyncWebhookReceiversFailed",
                "Failed to sync WebhookReceivers: " + "; ".join(errors),
                timezone.now(),
            )
        else:
            ready = condition(
                "Ready", True, "Synced", "ProjectConfig is synced and ready for use", timezone.now()
            )
        status["conditions"] = set_condition(status.get("conditions", []), ready)
        status["observedGeneration"] = config.generation
        if status == config.status:
            return
        config.status = status
        config.save(update_fields=["status"])
        broadcast_on_commit(config.project_id, "projectconfig", config.id)


def do_sync_webhook_receivers_of(project_names) -> None:
    """Re-export the receivers of these projects' ProjectConfigs (after an apply that changed a
    ProjectConfig or a Secret they may use)."""
    for config in ProjectConfig.objects.filter(project__name__in=set(project_names)):
        do_sync_webhook_receivers(config)


# ---------------------------------------------------------------- lookup


@dataclass(frozen=True)
class Found:
    config: ProjectConfig
    receiver: WebhookReceiver
    secret: str


def find_receiver(kind: str, digest: str) -> Found | None:
    """The receiver whose path ends in /webhook/<kind>/<digest>: named by a ProjectConfig's
    status (Kargo's router looks it up the same way), and still derived from its Secret's current
    value, so a rotated or deleted secret stops the old URL at once, whatever the status says."""
    if kind not in KINDS:
        return None
    suffix = f"/webhook/{kind}/{digest}"
    for config in ProjectConfig.objects.filter(status__has_key="webhookReceivers").select_related(
        "project"
    ):
        listed = config.status.get("webhookReceivers") or []
        name = next(
            (d.get("name") for d in listed if str(d.get("path", "")).endswith(suffix)), None
        )
        if name is None:
            continue
        receiver = next(
            (r for r in config.typed_spec.webhookReceivers or [] if r.name == name), None
        )
        if receiver is None or receiver_kind(receiver) != kind:
            return None
        data = generic(config.project_id, secret_name(receiver))
        try:
            secret = secret_value(kind, data or {})
        except ValueError:
            return None
        current = receiver_details(config.project.name, receiver, secret, settings.KARGO_PUBLIC_URL)
        if not current["path"].endswith(suffix):
            return None
        return Found(config, receiver, secret)
    return None


def read_body(request: HttpRequest) -> bytes:
    """The raw body, read no further than the limit (413 past it, before any parsing)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise WebhookError(400, "invalid Content-Length header") from None
        if length > MAX_BODY_BYTES:
            raise WebhookError(413, f"content exceeds limit of {MAX_BODY_BYTES} bytes")
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(413, f"content exceeds limit of {MAX_BODY_BYTES} bytes")
    return body


# ---------------------------------------------------------------- the delivery's changes


def actor_of(found: Found) -> str:
    return f"webhook:{found.receiver.name}"


def do_refresh_subscribed(found: Found, event: Event) -> list[str]:
    """Refresh the project's Warehouses the event concerns; their names. A Warehouse whose
    filters cannot even be evaluated is refreshed (its discovery will say what is wrong)."""
    project = found.config.project
    refreshed = []
    with transaction.atomic():
        for warehouse in Warehouse.objects.filter(project=project).select_related("project"):
            try:
                concerned = should_refresh(warehouse.typed_spec, event)
            except ValueError:
                concerned = bool(subscribed_urls(warehouse.typed_spec) & set(event.repo_urls))
            if concerned:
                do_request_refresh(warehouse, actor_of(found))
                refreshed.append(warehouse.name)
        record_event(
            project,
            "WebhookReceived",
            actor_of(found),
            f"{event.summary}: refreshed {len(refreshed)} Warehouse(s)"
            + (f" ({', '.join(refreshed)})" if refreshed else ""),
            f"ProjectConfig/{found.config.name}",
        )
    return refreshed


def do_run_generic(found: Found, event: Event) -> tuple[int, dict]:
    """The generic receiver's actions; Kargo's answer: 200 with each action's result, 500 when
    any action erred or failed."""
    project = found.config.project
    warehouses = list(Warehouse.objects.filter(project=project).select_related("project"))
    by_id = {w.id: w for w in warehouses}
    targets = [Target(w.id, w.name, w.labels or {}, w.typed_spec) for w in warehouses]
    results = []
    with transaction.atomic():
        for result, chosen in plan_generic(
            found.receiver.generic.actions or [], targets, event.env
        ):
            if "result" not in result:
                for target in chosen:
                    do_request_refresh(by_id[target.id], actor_of(found))
                result["selectedTargets"] = [
                    {"namespace": project.name, "name": t.name, "success": True} for t in chosen
                ]
                result["result"] = "Success"
                result["summary"] = f"Refreshed {len(chosen)} of {len(chosen)} selected resources"
            results.append(result)
        record_event(
            project,
            "WebhookReceived",
            actor_of(found),
            "generic delivery: " + "; ".join(f"{r['result']}: {r['summary']}" for r in results),
            f"ProjectConfig/{found.config.name}",
        )
    failed = any(r["result"] in ("Error", "Failure", "PartialSuccess") for r in results)
    return (500 if failed else 200), {"results": results}


def do_record_reply(found: Found, event: Event) -> None:
    with transaction.atomic():
        record_event(
            found.config.project,
            "WebhookReceived",
            actor_of(found),
            event.summary or event.message,
            f"ProjectConfig/{found.config.name}",
        )


def handle(request: HttpRequest, kind: str, digest: str) -> tuple[int, dict]:
    """One delivery, start to answer: (status, JSON body). Raises WebhookError."""
    found = find_receiver(kind, digest)
    if found is None:
        raise WebhookError(404, "no webhook receiver at this path")
    body = read_body(request)
    headers = request.headers
    delivery = Delivery(
        headers=headers,
        body=body,
        query={key: request.GET.get(key, "") for key in request.GET},
        header_lists={name.lower(): [value] for name, value in headers.items()},
    )
    event = parse_delivery(found.receiver, delivery, found.secret)
    with audit_context(Surface.WEBHOOK, client_address(request), actor_of(found)):
        if event.action == "reply":
            do_record_reply(found, event)
            return 200, {"msg": event.message} if event.message else {}
        if event.action == "generic":
            return do_run_generic(found, event)
        refreshed = do_refresh_subscribed(found, event)
    return 200, {"msg": f"refreshed {len(refreshed)} warehouse(s)", "refreshed": len(refreshed)}


# ---------------------------------------------------------------- the view


def _answer(status: int, data: dict) -> JsonResponse:
    response = JsonResponse(data, status=status)
    # Django's own "Bad Request: <path>" line would log the path, which stands for the secret;
    # receive() logs the delivery without it.
    response._has_been_logged = True
    return response


@csrf_exempt
def receive(request: HttpRequest, kind: str, digest: str) -> JsonResponse:
    # Every answer goes through _answer, Django's 405 and 500 included: their log lines would
    # carry the path.
    if request.method != "POST":
        response = _answer(405, {"error": f"method {request.method} not allowed; use POST"})
        response["Allow"] = "POST"
        return response
    try:
        status, data = handle(request, kind, digest)
    except WebhookError as exc:
        log.info(
            "webhook delivery to a %s receiver refused (%s): %s", kind, exc.status, exc.message
        )
        return _answer(exc.status, {"error": exc.message})
    except Exception:
        log.exception("webhook delivery to a %s receiver failed", kind)
        return _answer(500, {"error": "internal error"})
    log.info("webhook delivery to a %s receiver accepted (%s)", kind, status)
    return _answer(status, data)


urlpatterns = [path("webhook/<str:kind>/<str:digest>", receive, name="webhook-receiver")]
