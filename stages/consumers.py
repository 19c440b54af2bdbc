"""The project page's websocket: joins the project's live feed (stages.live), which pushes the
fragments of every change the page shows."""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from projects.access import role_in
from projects.models import Project

from . import live

MAX_MESSAGE = 512  # a page's "what I show" message is far smaller


class ProjectConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.feed = None
        self.project = await Project.objects.filter(
            name=self.scope["url_route"]["kwargs"]["name"]
        ).afirst()
        user = self.scope.get("user")
        if self.project is None or user is None or await self.role() is None:
            await self.close(code=4403)
            return
        await self.accept()
        self.feed = await live.subscribe(self.project.id, self, user)

    async def disconnect(self, code):
        if self.feed is not None:
            await live.unsubscribe(self.project.id, self)
            self.feed = None

    async def receive(self, text_data=None, bytes_data=None):
        # The page never sends commands over the socket (actions are HTTP POSTs with CSRF and
        # role checks); it only says what it shows: {"drawer", "newest", "seq", "resync"}.
        if self.feed is None or not text_data or len(text_data) > MAX_MESSAGE:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("watch"), dict):
            self.feed.watch(self, message["watch"])

    async def push(self, html: str) -> None:
        await self.send(text_data=html)

    async def refuse(self) -> None:
        await self.close(code=4403)
        if self.feed is not None:
            await live.unsubscribe(self.project.id, self)
            self.feed = None

    @database_sync_to_async
    def role(self) -> str | None:
        return role_in(self.scope["user"], self.project)
