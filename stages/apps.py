from django.apps import AppConfig


class StagesConfig(AppConfig):
    name = "stages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register this app's tasks by name (see projects.queue).
        from . import signals, tasks  # noqa: F401

        signals.connect()
