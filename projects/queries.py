"""Read paths shared by every app's views and API."""

from django.http import Http404


def get_or_404(qs, what: str, **lookup):
    """The one object of `qs` matching `lookup`, or a 404 that says what was missing."""
    obj = qs.filter(**lookup).first()
    if obj is None:
        raise Http404(f"{what} not found")
    return obj
