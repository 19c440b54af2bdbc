"""Live updates: one tiny wrapper around the channel layer so nothing else calls async_to_sync.

State changes call `broadcast_on_commit(project_id, kind, obj_id)`; every page of that project
subscribed over the websocket receives the message and its consumer renders the fragment.
"""

import asyncio
import logging
import uuid
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

# Set by `manage.py serve` to daphne's event loop. With the in-memory channel layer a send from a
# worker thread through async_to_sync lands on another loop and is noticed only at daphne's next
# timer tick (about a second); scheduling it on daphne's own loop delivers it at once.
server_loop: asyncio.AbstractEventLoop | None = None


class Change(TypedDict):
    type: str  # channel layer handler name on the consumer: "project.change"
    kind: str  # stage | promotion | freight | warehouse | project
    id: int
    seq: str  # unique per change: consumers render each change once per role (see render_change)


def group_name(project_id: int) -> str:
    return f"project-{project_id}"


def send_change(project_id: int, kind: str, obj_id: int) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message: Change = {
        "type": "project.change",
        "kind": kind,
        "id": obj_id,
        "seq": uuid.uuid4().hex,
    }
    group = group_name(project_id)
    loop = server_loop
    try:
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
            if not _on_loop(loop):
                future.result(timeout=5)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # A live update is a courtesy: the database already holds the change, and pages reconcile
        # on reconnect. Never fail a state change because a push failed.
        log.exception("live update for %s %s failed", kind, obj_id)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def broadcast_on_commit(project_id: int, kind: str, obj_id: int) -> None:
    transaction.on_commit(lambda: send_change(project_id, kind, obj_id))
