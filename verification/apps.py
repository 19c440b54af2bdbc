from django.apps import AppConfig


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = "Verification"

    def ready(self) -> None:
        # Providers register themselves by name when imported; tasks by name (projects.queue).
        from . import tasks  # noqa: F401
        from .providers import job, prometheus, web  # noqa: F401
