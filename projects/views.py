import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from kargo.times import rfc3339_nano

from .access import Needs, actor_of, get_project_for_user, projects_for_user
from .actions import do_delete_credential, do_save_credential
from .credentials import CredentialsError, credential_info, credentials_of, unseal
from .models import ApiToken, CredType, Event, Role, Surface
from .queries import AuditFilter, audit_choices, audit_events, audit_page, get_or_404
from .tokens import do_create_token, do_delete_token, parse_expiry, token_info
from .web import htmx_partial


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


# ---------------------------------------------------------------- audit

AUDIT_PAGE_SIZE = 50
EXPORTS = ("csv", "jsonl")


class AuditFilterForm(forms.Form):
    """The audit page's filters, as GET parameters. `since`/`until` take a date (the whole day)
    or a date and time."""

    reason = forms.CharField(required=False, max_length=64)
    actor = forms.CharField(required=False, max_length=200)
    surface = forms.ChoiceField(required=False, choices=[("", "any"), *Surface.choices])
    since = forms.DateTimeField(required=False)
    until = forms.DateTimeField(required=False)
    q = forms.CharField(required=False, max_length=200)

    def clean_until(self):
        until = self.cleaned_data["until"]
        if until is not None and len(self.data.get("until", "").strip()) == 10:
            # A bare date means up to the end of that day.
            until = until + timedelta(days=1) - timedelta(microseconds=1)
        return until

    def audit_filter(self) -> AuditFilter:
        data = self.cleaned_data
        return AuditFilter(
            reason=data["reason"].strip(),
            actor=data["actor"].strip(),
            surface=data["surface"],
            since=data["since"],
            until=data["until"],
            text=data["q"].strip(),
        )


@login_required
def audit(request: HttpRequest, name: str) -> HttpResponse:
    """The project's audit trail, for its admins: every recorded change, newest first, with
    filters (reason, actor, surface, since, until, free text), keyset paging and export of the
    filtered set (`?format=csv` or `?format=jsonl`, streamed)."""
    project, role = get_project_for_user(request.user, name, Needs.MANAGE)
    form = AuditFilterForm(request.GET)
    valid = form.is_valid()
    export = request.GET.get("format", "")
    if export:
        if export not in EXPORTS:
            return HttpResponse(
                f"format must be one of {', '.join(EXPORTS)}", status=400, content_type="text/plain"
            )
        if not valid:
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
        return export_events(project.name, audit_events(project, form.audit_filter()), export)
    events, more = [], None
    if valid:
        events, more = audit_page(
            project,
            audit_events(project, form.audit_filter()),
            request.GET.get("before", ""),
            AUDIT_PAGE_SIZE,
        )
    # The filters as they stand, without the paging cursor: for the export and paging links.
    query = request.GET.copy()
    query.pop("before", None)
    query.pop("format", None)
    for event in events:
        event.changes = changed_fields(event.before, event.after)
    ctx = {
        "project": project,
        "role": role,
        "form": form,
        "events": events,
        "more": more,
        "paged": bool(request.GET.get("before")),
        "page_size": AUDIT_PAGE_SIZE,
        "query": query.urlencode(),
        "filtered": any(form.data.get(f) for f in form.fields),
    }
    # Only the filter form and the paging links ask for the table; an htmx history restore asks
    # for the whole page.
    if htmx_partial(request) and request.htmx.target == "audit-table":
        return render(request, "audit.html#audit-table", ctx)
    ctx["reasons"] = audit_choices(project, "reason")
    ctx["actors"] = audit_choices(project, "actor")
    return render(request, "audit.html", ctx)


def changed_fields(before, after, path: str = "", limit: int = 8) -> list[tuple[str, str, str]]:
    """What a change changed, leaf by leaf: (path, old, new) with the values as short JSON, for
    the page's one-line summary (`spec.interval: 30s → 7m0s`). Empty when there is nothing to
    compare (a creation or a deletion shows its whole before or after instead)."""
    if before is None or after is None:
        return []
    out: list[tuple[str, str, str]] = []

    def short(value) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return text if len(text) <= 60 else text[:59] + "…"

    def walk(old, new, at: str) -> None:
        if len(out) > limit or old == new:
            return
        if isinstance(old, dict) and isinstance(new, dict):
            for key in [*old, *(k for k in new if k not in old)]:
                walk(old.get(key), new.get(key), f"{at}.{key}" if at else str(key))
        elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                walk(a, b, f"{at}[{i}]")
        else:
            out.append(
                (
                    at or "value",
                    "—" if old is None else short(old),
                    "—" if new is None else short(new),
                )
            )

    walk(before, after, path)
    if len(out) > limit:
        out[limit:] = [("…", "", "")]
    return out


def export_events(project: str, events, export: str) -> StreamingHttpResponse:
    """The filtered events, streamed in batches: an export of 100,000 events never sits whole in
    memory."""
    rows = events.iterator(chunk_size=1000)
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if export == "csv":
        body, content_type = csv_lines(rows), "text/csv; charset=utf-8"
    else:
        body, content_type = jsonl_lines(rows), "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{project}-audit-{stamp}.{export}"'
    return response


EXPORT_FIELDS = (
    "time",
    "reason",
    "actor",
    "surface",
    "sourceAddress",
    "involved",
    "message",
    "before",
    "after",
)


def event_record(event: Event) -> dict:
    return {
        "time": rfc3339_nano(event.created_at.astimezone(UTC)),
        "reason": event.reason,
        "actor": event.actor,
        "surface": event.surface,
        "sourceAddress": event.source_address,
        "involved": event.involved,
        "message": event.message,
        "before": event.before,
        "after": event.after,
    }


class _Line:
    """A file-like object whose write() returns what was written, for csv.writer."""

    def write(self, text: str) -> str:
        return text


def spreadsheet_safe(value) -> str:
    """A CSV cell a spreadsheet will not run: text starting with =, +, -, @ or a control
    character gets a leading apostrophe (OWASP's rule for CSV injection)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(events: Iterable[Event]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events:
        record = event_record(event)
        for key in ("before", "after"):
            if record[key] is not None:
                record[key] = json.dumps(record[key], sort_keys=True)
        yield writer.writerow([spreadsheet_safe(record[f]) for f in EXPORT_FIELDS])


def jsonl_lines(events: Iterable[Event]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event_record(event)) + "\n"


class TokenForm(forms.Form):
    name = forms.CharField(max_length=63)
    role = forms.ChoiceField(choices=Role.choices)
    expires = forms.CharField(max_length=16, initial="90d", required=False)


@login_required
def tokens(request: HttpRequest, name: str) -> HttpResponse:
    """The project's API tokens, for its admins: list, create (the secret is shown once, on the
    page that created it) and revoke. The same rules as `kargo create|delete token`."""
    project, role = get_project_for_user(request.user, name, Needs.MANAGE)
    form = TokenForm(request.POST or None)
    created = ""
    if request.method == "POST" and "revoke" in request.POST:
        token = get_or_404(ApiToken.objects, "token", project=project, name=request.POST["revoke"])
        do_delete_token(token, actor_of(request))
        messages.info(request, f"Token {token.name} revoked.")
        return redirect("tokens", project.name)
    if request.method == "POST" and form.is_valid():
        try:
            lifetime = parse_expiry(form.cleaned_data["expires"] or "90d")
            _, created = do_create_token(
                project,
                form.cleaned_data["name"],
                form.cleaned_data["role"],
                actor_of(request),
                lifetime,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            form = TokenForm()
    ctx = {
        "project": project,
        "role": role,
        "form": form,
        "created": created,
        "tokens": [
            token_info(t) for t in ApiToken.objects.filter(project=project).order_by("name")
        ],
    }
    # The secret exists only in this response: never cached, never kept by the browser.
    response = render(request, "tokens.html", ctx, status=201 if created else 200)
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- credentials


class CredentialForm(forms.Form):
    """A repository credential (git, helm, image) or a generic one, as the settings page edits
    it. Secret values are typed, never shown: a blank password (or blank generic data) on an
    existing credential keeps what is stored."""

    name = forms.CharField(max_length=253)
    type = forms.ChoiceField(choices=CredType.choices)
    repo_url = forms.CharField(max_length=2048, required=False)
    regex = forms.BooleanField(required=False)
    username = forms.CharField(max_length=253, required=False)
    password = forms.CharField(max_length=4096, required=False, strip=False)
    data = forms.CharField(max_length=1024 * 1024, required=False, strip=False)


def generic_lines(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines (generic credentials) as data; ValueError names a bad line by number."""
    data = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"data line {number}: write KEY=VALUE")
        data[key.strip()] = value
    return data


@login_required
def credentials(request: HttpRequest, name: str) -> HttpResponse:
    """The project's credentials, for its admins: list (name, type, URL, username, which values
    are set: never a value), add, edit (a blank password keeps the stored one) and delete. The
    same rules as `kargo apply` of a credential Secret and `kargo create repo-credentials`."""
    project, role = get_project_for_user(request.user, name, Needs.MANAGE)
    rows = list(credentials_of(project.id))
    by_name = {row.name: row for row in rows}
    form = CredentialForm(request.POST or None)
    editing = by_name.get(request.GET.get("edit", ""))
    if request.method == "POST" and "delete" in request.POST:
        row = get_or_404(credentials_of(project.id), "credential", name=request.POST["delete"])
        do_delete_credential(row, actor_of(request))
        messages.info(request, f"Credential {row.name} deleted.")
        return redirect("credentials", project.name)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        existing = by_name.get(values["name"])
        try:
            stored = unseal(existing) if existing else {}
            if values["type"] == CredType.GENERIC:
                data = generic_lines(values["data"]) or stored
            else:
                data = {
                    "repoURL": values["repo_url"].strip(),
                    "repoURLIsRegex": "true" if values["regex"] else "false",
                    "username": values["username"].strip(),
                    "password": values["password"] or stored.get("password", ""),
                }
            result = do_save_credential(
                project,
                values["name"],
                values["type"],
                data,
                actor_of(request),
                labels=existing.labels if existing else None,
                annotations=existing.annotations if existing else None,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.info(request, f"Credential {values['name']} {result}.")
            return redirect("credentials", project.name)
    shown = []
    for row in rows:
        info = credential_info(row)
        try:
            # The username is no secret (Kargo prints it); the password is only said to be set.
            info["username"] = (
                unseal(row).get("username", "") if row.cred_type != CredType.GENERIC else ""
            )
        except CredentialsError:
            info["unreadable"] = True
        shown.append(info)
    initial = {}
    if editing is not None and request.method != "POST":
        initial = {
            "name": editing.name,
            "type": editing.cred_type,
            "repo_url": editing.repo_url,
            "regex": editing.repo_url_is_regex,
            "username": next((c["username"] for c in shown if c["name"] == editing.name), ""),
        }
    ctx = {
        "project": project,
        "role": role,
        "form": form,
        "values": form.data if request.method == "POST" else initial,
        "editing": editing.name
        if editing is not None
        else (
            form.data.get("name")
            if request.method == "POST" and form.data.get("name") in by_name
            else ""
        ),
        "credentials": shown,
        "types": CredType.choices,
    }
    response = render(request, "credentials.html", ctx, status=400 if form.errors else 200)
    response["Cache-Control"] = "no-store"
    return response
