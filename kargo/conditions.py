"""Kubernetes-style status conditions (metav1.Condition lists)."""

from .times import rfc3339


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


def get_condition(conditions: list[dict], type_: str) -> dict | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
