"""Read paths shared by every app's views and API, and the audit page's."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import Http404

from .models import Event, Project


def get_or_404(qs, what: str, **lookup):
    """The one object of `qs` matching `lookup`, or a 404 that says what was missing."""
    obj = qs.filter(**lookup).first()
    if obj is None:
        raise Http404(f"{what} not found")
    return obj


# ---------------------------------------------------------------- audit


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page narrows a project's events to; empty fields do not filter."""

    reason: str = ""
    actor: str = ""
    surface: str = ""
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""


def audit_events(project: Project, f: AuditFilter) -> QuerySet[Event]:
    """A project's events matching `f`, newest first. Reason, actor and surface are exact matches,
    so each is served by its (project, field, -created_at) index; the free text is a substring of
    the message or the involved object, read only until a page is full."""
    qs = Event.objects.filter(project=project)
    if f.reason:
        qs = qs.filter(reason=f.reason)
    if f.actor:
        qs = qs.filter(actor=f.actor)
    if f.surface:
        qs = qs.filter(surface=f.surface)
    if f.since:
        qs = qs.filter(created_at__gte=f.since)
    if f.until:
        qs = qs.filter(created_at__lte=f.until)
    if f.text:
        qs = qs.filter(Q(message__icontains=f.text) | Q(involved__icontains=f.text))
    return qs.order_by("-created_at", "-id")


def audit_page(
    project: Project, events: QuerySet[Event], before: str, size: int
) -> tuple[list[Event], Event | None]:
    """Keyset paging: up to `size` events older than the event with id `before` (the newest ones
    when `before` is empty or unknown), and the last of them when there are more. Two indexed
    reads however many events the project holds; no OFFSET, no COUNT."""
    if before.isdigit():
        cursor = (
            Event.objects.filter(project=project, id=int(before))
            .values_list("created_at", "id")
            .first()
        )
        if cursor:
            events = events.filter(
                Q(created_at__lt=cursor[0]) | Q(created_at=cursor[0], id__lt=cursor[1])
            )
    rows = list(events[: size + 1])
    return rows[:size], (rows[size - 1] if len(rows) > size else None)


def audit_choices(project: Project, field: str, limit: int = 200) -> list[str]:
    """The distinct values of an event field in a project (reasons, actors), for the filters."""
    return list(
        Event.objects.filter(project=project)
        .order_by(field)
        .values_list(field, flat=True)
        .distinct()[:limit]
    )
