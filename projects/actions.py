"""State changes of the core app. Each runs in the caller's transaction and broadcasts on commit."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from kargo.conditions import condition
from kargo.redaction import redact, redact_values
from kargo.specs.core import CRED_TYPE_LABEL, check_repo_credential, valid_name

from . import audit
from .credentials import resealed, seal, unseal
from .live import broadcast_on_commit
from .models import ConfigMap, Credential, CredType, Event, Membership, Project, Role


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


# ---------------------------------------------------------------- credentials store
# No live broadcast: no page shows credentials live, and a broadcast would only name them. Events
# record names, types, URLs and which keys changed, never a value.


def _cred_event_state(row: Credential) -> dict:
    return {
        "type": row.cred_type,
        "repoURL": row.repo_url,
        "repoURLIsRegex": row.repo_url_is_regex,
        "keys": list(row.keys),
    }


def do_save_credential(
    project: Project | None,
    name: str,
    cred_type: str,
    data: dict[str, str],
    actor: str,
    *,
    labels: dict | None = None,
    annotations: dict | None = None,
    create_only: bool = False,
) -> str:
    """Create or replace a credential Secret (`project` None: a shared one); returns "created",
    "configured" or "unchanged". ValueError names what is wrong (never a value)."""
    if not valid_name(name):
        raise ValueError(
            f"invalid credential name {name!r}: lowercase letters, digits, '-' and '.', at most "
            "253 characters, starting and ending with a letter or digit"
        )
    if cred_type not in CredType.values:
        raise ValueError(
            f"unknown credential type {cred_type!r}; use one of {', '.join(CredType.values)}"
        )
    if cred_type != CredType.GENERIC:
        errors = check_repo_credential(data)
        if errors:
            raise ValueError("; ".join(map(str, errors)))
    elif not data:
        raise ValueError("a generic credential needs at least one key")
    labels = {**(labels or {}), CRED_TYPE_LABEL: cred_type}
    annotations = annotations or {}
    where = f"project {project.name}" if project else "the shared credentials"
    existing = Credential.objects.filter(
        Q(project=project) if project else Q(project__isnull=True), name=name
    ).first()
    if existing is not None and create_only:
        raise ValueError(f"credential {name!r} already exists in {where}")
    if existing is not None and existing.cred_type != cred_type:
        raise ValueError(
            f"credential {name!r} in {where} is of type {existing.cred_type}, not {cred_type}: "
            "delete it first to change its type"
        )
    fields = {
        "cred_type": cred_type,
        "repo_url": data.get("repoURL", "") if cred_type != CredType.GENERIC else "",
        "repo_url_is_regex": data.get("repoURLIsRegex") == "true",
        "keys": sorted(data),
        "labels": labels,
        "annotations": annotations,
    }
    if existing is None:
        row = Credential.objects.create(project=project, name=name, sealed=seal(data), **fields)
        record_event(
            project,
            "CredentialCreated",
            actor,
            f"{cred_type} credential {name} created"
            + (f" for {row.repo_url}" if row.repo_url else ""),
            f"Secret/{name}",
            before=None,
            after=_cred_event_state(row),
        )
        return "created"
    old_data = unseal(existing)
    unchanged = old_data == data and all(getattr(existing, k) == v for k, v in fields.items())
    if unchanged:
        return "unchanged"
    before = _cred_event_state(existing)
    changed_keys = sorted(k for k in {*old_data, *data} if old_data.get(k) != data.get(k))
    for key, value in fields.items():
        setattr(existing, key, value)
    existing.sealed = seal(data)
    existing.save()
    record_event(
        project,
        "CredentialUpdated",
        actor,
        f"{cred_type} credential {name} updated"
        + (f" (changed: {', '.join(changed_keys)})" if changed_keys else ""),
        f"Secret/{name}",
        before=before,
        after=_cred_event_state(existing),
    )
    return "configured"


def do_delete_credential(row: Credential, actor: str) -> None:
    before = _cred_event_state(row)
    row.delete()
    record_event(
        row.project if row.project_id else None,
        "CredentialDeleted",
        actor,
        f"{row.cred_type} credential {row.name} deleted",
        f"Secret/{row.name}",
        before=before,
        after=None,
    )


def do_rotate_credentials_key(actor: str) -> int:
    """Re-encrypt every stored credential with the first configured key (after a new key was put
    first in KARGO_CREDENTIALS_KEYS); returns how many. All or none: one that no configured key
    opens stops the rotation with its name."""
    count = 0
    with transaction.atomic():
        for row in Credential.objects.select_for_update().only("id", "name", "sealed"):
            Credential.objects.filter(id=row.id).update(sealed=resealed(row))
            count += 1
        record_event(
            None,
            "CredentialsKeyRotated",
            actor,
            f"{count} credential(s) re-encrypted with the first configured key",
        )
    return count


def do_save_config_map(
    project: Project | None,
    name: str,
    data: dict[str, str],
    actor: str,
    *,
    labels: dict | None = None,
    annotations: dict | None = None,
) -> str:
    if not valid_name(name):
        raise ValueError(f"invalid configmap name {name!r}")
    labels, annotations = labels or {}, annotations or {}
    existing = ConfigMap.objects.filter(
        Q(project=project) if project else Q(project__isnull=True), name=name
    ).first()
    new = {"data": data, "labels": labels, "annotations": annotations}
    if existing is None:
        ConfigMap.objects.create(project=project, name=name, **new)
        record_event(
            project,
            "ConfigMapCreated",
            actor,
            f"ConfigMap {name} created",
            f"ConfigMap/{name}",
            before=None,
            after=new,
        )
        return "created"
    changed = [k for k, v in new.items() if getattr(existing, k) != v]
    if not changed:
        return "unchanged"
    before = {k: getattr(existing, k) for k in changed}
    for key in changed:
        setattr(existing, key, new[key])
    existing.save()
    record_event(
        project,
        "ConfigMapUpdated",
        actor,
        f"ConfigMap {name} updated ({', '.join(changed)})",
        f"ConfigMap/{name}",
        before=before,
        after={k: new[k] for k in changed},
    )
    return "configured"


def do_delete_config_map(row: ConfigMap, actor: str) -> None:
    row.delete()
    record_event(
        row.project if row.project_id else None,
        "ConfigMapDeleted",
        actor,
        f"ConfigMap {row.name} deleted",
        f"ConfigMap/{row.name}",
        before={"data": row.data},
        after=None,
    )
