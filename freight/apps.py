from django.apps import AppConfig


class FreightConfig(AppConfig):
    name = "freight"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register this app's tasks by name (see projects.queue).
        from . import tasks  # noqa: F401
