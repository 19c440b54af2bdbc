import yaml
from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from kargo.redaction import redact, redact_values
from kargo.times import parse_rfc3339

register = template.Library()


@register.filter(name="redact")
def redact_filter(value):
    """URL credentials never reach a page: kargo.redaction's one rule, on a text, or on every
    string of a JSON-like value (a step's output), which keeps its shape for `toyaml`. Apply it
    before anything that cuts a text (`truncatechars`), which could leave a URL the rule no
    longer recognises."""
    if isinstance(value, (dict, list)):
        return redact_values(value)
    return redact("" if value is None else str(value))


@register.filter
def short(value: str, n: int = 7) -> str:
    return (value or "")[:n]


@register.filter
def toyaml(value) -> str:
    if value in (None, {}, []):
        return ""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()


@register.filter
def ago(value) -> str:
    """'3 minutes ago' from a datetime or an RFC 3339 string."""
    when = parse_rfc3339(value) if isinstance(value, str) else value
    if not when:
        return ""
    if (timezone.now() - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when, timezone.now()).split(',')[0]} ago"


@register.filter
def ago_time(value) -> str:
    """`ago` inside a <time> element that the page keeps current (static/js/live.js), so HTML
    that is cached or pushed never shows a stale "just now"."""
    when = parse_rfc3339(value) if isinstance(value, str) else value
    if not when:
        return ""
    return format_html('<time datetime="{}" data-ago>{}</time>', when.isoformat(), ago(when))


@register.filter
def step_duration(meta: dict) -> str:
    start = parse_rfc3339(meta.get("startedAt", ""))
    end = parse_rfc3339(meta.get("finishedAt", "")) or (timezone.now() if start else None)
    if not start:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@register.filter
def span(start, end) -> str:
    """How long from start to end (or now): datetimes or RFC 3339 strings."""
    start = parse_rfc3339(start) if isinstance(start, str) else start
    end = parse_rfc3339(end) if isinstance(end, str) else end
    if not start:
        return ""
    seconds = max(0, int(((end or timezone.now()) - start).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@register.filter
def phase_class(phase: str) -> str:
    return {
        "Succeeded": "ok",
        "Successful": "ok",
        "Ready": "ok",
        "Healthy": "ok",
        "Verified": "ok",
        "Running": "run",
        "Promoting": "run",
        "Verifying": "run",
        "Pending": "wait",
        "Failed": "bad",
        "Errored": "bad",
        "Error": "bad",
        "Aborted": "bad",
        "Inconclusive": "wait",
        "Skipped": "skip",
    }.get(phase or "", "unknown")


@register.filter
def event_class(reason: str) -> str:
    """Colour an audit event by how it ended: PromotionSucceeded is good news, *Failed is not."""
    for suffix, css in (
        ("Succeeded", "ok"),
        ("Successful", "ok"),
        ("Failed", "bad"),
        ("Error", "bad"),
        ("Errored", "bad"),
        ("Aborted", "bad"),
        ("Created", "run"),
    ):
        if reason.endswith(suffix):
            return css
    return "unknown"


@register.filter
def artifact_label(freight) -> str:
    """What a person recognises Freight by: a tag, else a short commit or image digest."""
    for c in freight.commits:
        if c.get("tag"):
            return c["tag"]
    for i in freight.images:
        if i.get("tag"):
            return i["tag"]
    for c in freight.charts:
        return c.get("version", "")
    for c in freight.commits:
        return c.get("id", "")[:7]
    return freight.name[:7]


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)
