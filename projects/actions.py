"""State changes of the core app. Each runs in the caller's transaction and broadcasts on commit."""

from django.utils import timezone

from kargo.conditions import condition
from kargo.redaction import redact, redact_values

from . import audit
from .live import broadcast_on_commit
from .models import Event, Membership, Project, Role


def record_event(
    project: Project | None,
    reason: str,
    actor: str,
    message: str,
    involved: str = "",
    *,
    before=None,
    after=None,
) -> Event:
    """The audit record of a change. Its surface and source address come from the audit context
    of the request, command or task (projects.audit); `before`/`after` hold the changed fields,
    given here or by an enclosing `audit.audit_change`. Credentials in URLs in the message and in
    them are masked (kargo.redaction) before anything is stored."""
    ctx = audit.current()
    if before is None and after is None:
        before, after = ctx.before, ctx.after
    return Event.objects.create(
        project=project,
        reason=reason,
        actor=actor or ctx.actor,
        message=redact(message),
        involved=involved,
        surface=ctx.surface,
        source_address=ctx.address,
        before=redact_values(before),
        after=redact_values(after),
    )


def do_create_project(name: str, actor: str, labels=None, annotations=None) -> Project:
    project = Project.objects.create(name=name, labels=labels or {}, annotations=annotations or {})
    project.status = {
        "conditions": [condition("Ready", True, "Synced", "Project is ready", timezone.now())]
    }
    project.save(update_fields=["status"])
    record_event(project, "ProjectCreated", actor, f"Project {name} created")
    broadcast_on_commit(project.id, "project", project.id)
    return project


def do_set_membership(project: Project, user, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership
