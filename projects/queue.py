"""Background work is started by task name once the transaction commits.

Actions never import their app's tasks module: tasks import actions (at module top), and an
action that must start work names the task instead. Each app's AppConfig.ready() imports its
tasks, so every name is registered before the first request or worker job.
"""

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task_name: str, *args) -> None:
    """Run Celery task `task_name` with `args` (IDs only) after the current transaction commits;
    at once when there is none."""
    transaction.on_commit(lambda: current_app.tasks[task_name].delay(*args))
