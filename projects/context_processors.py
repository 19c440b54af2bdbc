from django.conf import settings

from .access import is_loopback


def demo(request) -> dict:
    """Tell the login page to show the demo account where it would work."""
    return {
        "demo_login": settings.DEMO_MODE and is_loopback(request),
        "demo_username": settings.DEMO_USERNAME,
    }
