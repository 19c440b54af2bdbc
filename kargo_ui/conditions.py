"""Kubernetes-style status helpers: metav1.Condition lists and timestamps."""

from datetime import UTC, datetime


def condition(type_: str, status, reason: str, message: str, when) -> dict:
    """A metav1.Condition dict. `status` is True, False or None (Unknown)."""
    text = {True: "True", False: "False", None: "Unknown"}[status]
    return {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(when),
    }


def set_condition(conditions: list[dict], new: dict) -> list[dict]:
    """Replace the condition of the same type, keeping lastTransitionTime when status is unchanged."""
    out = []
    replaced = False
    for c in conditions:
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"]:
                new = {
                    **new,
                    "lastTransitionTime": c.get("lastTransitionTime", new["lastTransitionTime"]),
                }
            out.append(new)
            replaced = True
        else:
            out.append(c)
    if not replaced:
        out.append(new)
    return out


def rfc3339(when) -> str:
    """Kubernetes' timestamp format: UTC, whole seconds, Z suffix."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def get_condition(conditions: list[dict], type_: str) -> dict | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
