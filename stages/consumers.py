"""The project page's websocket: pushes fragments for every change in the project."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from projects.access import role_in
from projects.live import group_name
from projects.models import Project

from . import fragments


class ProjectConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.project = await Project.objects.filter(
            name=self.scope["url_route"]["kwargs"]["name"]
        ).afirst()
        user = self.scope.get("user")
        if self.project is None or user is None or await self.role() is None:
            await self.close(code=4403)
            return
        self.group = group_name(self.project.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # The page never sends commands over the socket: actions are HTTP POSTs with CSRF checks.
        return

    async def project_change(self, event):
        # Membership may have been revoked since connect: check again for every event.
        role = await self.role()
        if role is None:
            await self.close(code=4403)
            return
        html = await database_sync_to_async(fragments.render_change)(
            self.project.id, role, event["kind"], event["id"], event["seq"]
        )
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def role(self) -> str | None:
        return role_in(self.scope["user"], self.project)
