import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kargo_ui.settings")

app = Celery("kargo_ui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
