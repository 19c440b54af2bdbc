"""Where a change came from: the surface (browser, api, cli, controller, webhook), the client's
address and the acting principal, held in a context variable for the request, command or task
that is running, so that `projects.actions.record_event` fills them in without every action
passing them along.

Who sets it:
- `AuditMiddleware` for every HTTP request: surface "browser" and the client's address;
- `projects.web.api_view` for the JSON API: surface "api" (and the token or user as actor);
- `manage.py kargo`: surface "cli";
- Celery tasks (the signal handlers below): surface "controller", which is also what code
  running outside all of these gets.

`audit_change(before=..., after=...)` attaches the changed fields to the events recorded inside
it, for callers that know a change's old and new values but reach it through an action that
does not take them (a Freight alias changed by `apply`, say).
"""

import contextvars
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any

from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.http import HttpRequest

from .models import Surface


@dataclass(frozen=True)
class AuditContext:
    surface: str = Surface.CONTROLLER
    address: str | None = None
    actor: str = ""
    before: Any = None
    after: Any = None


# Nothing set: the controller, with no address.
_DEFAULT = AuditContext()
_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "kargo_audit", default=None
)


def current() -> AuditContext:
    return _current.get() or _DEFAULT


@contextmanager
def _set(ctx: AuditContext) -> Iterator[AuditContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextmanager
def audit_context(
    surface: str | None = None, address: str | None = None, actor: str | None = None
) -> Iterator[AuditContext]:
    """Events recorded inside come from `surface`, `address` and `actor`; what is not given is
    kept from the enclosing context (the API keeps the address the middleware found)."""
    outer = current()
    ctx = replace(
        outer,
        surface=surface or outer.surface,
        address=address if address is not None else outer.address,
        actor=actor if actor is not None else outer.actor,
    )
    with _set(ctx):
        yield ctx


@contextmanager
def audit_change(before: Any = None, after: Any = None) -> Iterator[AuditContext]:
    """Events recorded inside carry these before/after values (unless they pass their own)."""
    with _set(replace(current(), before=before, after=after)) as ctx:
        yield ctx


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str | None:
    """The address the request came from. X-Forwarded-For is anyone's to write, so it counts only
    when settings.AUDIT_TRUST_X_FORWARDED_FOR says a proxy of ours sits in front; then its last
    entry, the one that proxy appended, is the client (earlier entries are the client's word)."""
    if getattr(settings, "AUDIT_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        address = _ip(forwarded.rsplit(",", 1)[-1]) if forwarded else None
        if address:
            return address
    return _ip(request.META.get("REMOTE_ADDR", "") or "")


class AuditMiddleware:
    """Every request's changes come from the browser at the client's address, unless a view
    says otherwise (the JSON API does)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        with audit_context(Surface.BROWSER, client_address(request)):
            return self.get_response(request)


# A task acts as the controller, also when it runs inline (eager) inside a request or command.
# Tokens by task id: prerun and postrun of one task run in the same thread and context.
_task_tokens: dict[str, contextvars.Token] = {}


@task_prerun.connect
def _enter_controller(task_id=None, **kwargs) -> None:
    _task_tokens[task_id] = _current.set(AuditContext(surface=Surface.CONTROLLER))


@task_postrun.connect
def _leave_controller(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        # A token from another context cannot be reset; that context ends with its task anyway.
        with suppress(ValueError):
            _current.reset(token)
