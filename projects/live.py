"""Live updates: one tiny wrapper around the channel layer so nothing else calls async_to_sync.

State changes call `broadcast_on_commit(project_id, kind, obj_id)`. Each change carries the
project's next sequence number; the web processes (stages.live) coalesce the changes they receive,
render what they touch and push it to the open pages, and a gap in the numbers (a message the
channel layer shed) makes them re-sync the pages instead of leaving them silently stale.
"""

import asyncio
import itertools
import logging
import os
import threading
from typing import TypedDict

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

# Set by `manage.py serve` to daphne's event loop. With the in-memory channel layer a send from a
# worker thread through async_to_sync lands on another loop and is noticed only at daphne's next
# timer tick (about a second); scheduling it on daphne's own loop delivers it at once.
server_loop: asyncio.AbstractEventLoop | None = None


class Change(TypedDict):
    type: str  # channel layer handler name: "project.change"
    kind: str  # stage | promotion | freight | warehouse | project
    id: int
    seq: int  # the project's change number: consecutive, so a receiver can tell one is missing


def group_name(project_id: int) -> str:
    return f"project-{project_id}"


class Sequences:
    """Per-project change numbers. With Redis (the scaled mode) one counter per project serves
    every process; embedded, the serve process is the only sender whose changes reach pages."""

    def __init__(self):
        self.lock = threading.Lock()
        self.local: dict[int, itertools.count] = {}
        self.current_local: dict[int, int] = {}
        self.client: redis.Redis | None = None

    def _redis(self) -> redis.Redis | None:
        if not settings.REDIS_URL:
            return None
        if self.client is None:
            self.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        return self.client

    def key(self, project_id: int) -> str:
        return f"{settings.CHANNEL_PREFIX}:live-seq:{project_id}"

    def next(self, project_id: int) -> int:
        client = self._redis()
        if client is not None:
            return int(client.incr(self.key(project_id)))
        with self.lock:
            value = self.current_local.get(project_id, 0) + 1
            self.current_local[project_id] = value
            return value

    def current(self, project_id: int) -> int:
        client = self._redis()
        if client is not None:
            return int(client.get(self.key(project_id)) or 0)
        with self.lock:
            return self.current_local.get(project_id, 0)


sequences = Sequences()


def current_seq(project_id: int) -> int:
    """The number of the project's latest change: a page rendered now has seen all up to it."""
    try:
        return sequences.current(project_id)
    except redis.RedisError:
        log.exception("reading the live sequence of project %s failed", project_id)
        return 0


class SenderLoop:
    """A process's own event loop, in a thread, for sends to a Redis channel layer from outside
    any server loop (Celery workers, the CLI): channels-redis keeps its connections per loop, so
    a loop that lives on reuses them, where async_to_sync made a loop and a connection per send
    (about 9 ms of each verification measurement's CPU in bench_verification). Made again in a
    forked child, whose copy of the parent's loop has no thread running it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pid = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None or self.pid != os.getpid():
                self.loop = asyncio.new_event_loop()
                self.pid = os.getpid()
                threading.Thread(
                    target=self.loop.run_forever, name="live-sender", daemon=True
                ).start()
            return self.loop


sender = SenderLoop()


def send_change(project_id: int, kind: str, obj_id: int) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    group = group_name(project_id)
    loop = server_loop
    if loop is None and settings.REDIS_URL:
        loop = sender.get()
    try:
        message: Change = {
            "type": "project.change",
            "kind": kind,
            "id": obj_id,
            "seq": sequences.next(project_id),
        }
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
            if not _on_loop(loop):
                future.result(timeout=5)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # A live update is a courtesy: the database already holds the change, and pages re-sync
        # when they notice a gap or reconnect. Never fail a state change because a push failed.
        log.exception("live update for %s %s failed", kind, obj_id)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def broadcast_on_commit(project_id: int, kind: str, obj_id: int) -> None:
    transaction.on_commit(lambda: send_change(project_id, kind, obj_id))
