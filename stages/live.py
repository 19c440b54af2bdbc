"""Live pushes to open project pages: one feed per project in each web process.

A feed receives the project's changes once (its own channel in the project's group, however many
pages are open), pushes at most once per settings.LIVE_COALESCE_SECONDS (after a quiet spell at
once; changes meanwhile are coalesced, the latest state wins), looks
up every open page's role in one query (a revoked member's socket is closed), renders what the
changes touch once per role in a thread of its own (never on Channels' one shared sync thread),
and sends each page only the fragments it has a target for.

Nothing is dropped silently. Changes are numbered per project (projects.live); a feed that sees a
number missing for longer than LOSS_WAIT_SECONDS (the channel layer shed it) logs and counts the
loss and re-syncs every page's regions. Every push tells the page which numbers it covers; a page
that was rendered before a change it never got (it connected late, reconnected, or sees a gap)
asks for a re-sync and gets its regions whole.
"""

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from projects.access import roles_of
from projects.live import current_seq, group_name

from . import fragments

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.01  # one commit's broadcasts arrive together: wait this long for the rest
LOSS_WAIT_SECONDS = 1.0
RETRY_SECONDS = 1.0  # before receiving again after the channel layer failed  # how long a missing change number may be late before it counts as lost
DRAWER_ID = re.compile(r"^(stage|freight|promotion|analysisrun)-drawer-[0-9]{1,18}$")

# Rendering runs here: two threads, so a slow render of one project never waits for another's
# and the ASGI server's sync thread stays free for requests.
renderer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="live-render")
stats = {"pushes": 0, "renders": 0, "lost_changes": 0, "resyncs": 0}


def run_rendering(fn, *args):
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


class Page:
    """What the feed knows of one open page: who looks, what it shows, what it has seen."""

    def __init__(self, consumer, user):
        self.consumer = consumer
        self.user = user
        self.role: str | None = None
        self.drawer = ""  # id of the open drawer, "" for none
        self.newest = True  # shows the newest timeline page
        self.seq = 0  # the last change number the page has been sent (or was rendered at)
        self.needs_resync = False


class ProjectFeed:
    def __init__(self, project_id: int):
        self.project_id = project_id
        self.loop = asyncio.get_running_loop()
        self.layer = get_channel_layer()
        self.pages: dict[object, Page] = {}
        self.channel = ""
        self.receiver: asyncio.Task | None = None
        self.flusher: asyncio.TimerHandle | None = None
        self.changes: set[tuple[str, int]] = set()
        self.seq = 0  # the highest change number received with none missing before it
        self.ahead: set[int] = set()  # numbers received past a gap
        self.gap_since: float | None = None
        self.known: dict = {}  # what pages were last sent (fragments.render_changes)
        self.last_html: dict[tuple[str, str], str] = {}  # (role, target) -> last sent
        self.flushing = False
        self.last_flush = 0.0  # loop time of the last flush
        self.flush_tasks: set[asyncio.Task] = set()
        # Set once start() has read the project's change number: a page that joins before then
        # would take seq 0 and be told a different story than the pages after it.
        self.started = asyncio.Event()

    async def start(self) -> None:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(group_name(self.project_id), self.channel)
        # Joined first, then read: a change numbered after this arrives on the channel.
        self.seq = await asyncio.get_running_loop().run_in_executor(
            renderer, current_seq, self.project_id
        )
        self.receiver = asyncio.create_task(self.receive())

    async def stop(self) -> None:
        if self.receiver:
            self.receiver.cancel()
        if self.flusher:
            self.flusher.cancel()
        await self.layer.group_discard(group_name(self.project_id), self.channel)

    async def receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The channel layer failed (Redis went away): what was sent meanwhile is lost to
                # this process, so once it answers again every page re-syncs. Never stop listening.
                log.exception(
                    "project %s: receiving live changes failed; retrying", self.project_id
                )
                await asyncio.sleep(RETRY_SECONDS)
                for page in self.pages.values():
                    page.needs_resync = True
                self.schedule(0)
                continue
            if message.get("type") == "project.change":
                self.note(message)

    def note(self, message: dict) -> None:
        self.changes.add((str(message.get("kind")), int(message.get("id") or 0)))
        seq = int(message.get("seq") or 0)
        if seq > self.seq:
            self.ahead.add(seq)
            while self.seq + 1 in self.ahead:
                self.seq += 1
                self.ahead.discard(self.seq)
            if self.ahead and self.gap_since is None:
                self.gap_since = time.monotonic()
            elif not self.ahead:
                self.gap_since = None
        self.schedule()

    def schedule(self, delay: float | None = None) -> None:
        """Throttle, not debounce: after a quiet spell a change goes out almost at once (a short
        gather for the other broadcasts of the same commit); while changes keep coming, at most
        one push per window."""
        if self.flusher is None:
            loop = asyncio.get_running_loop()
            if delay is None:
                next_allowed = self.last_flush + settings.LIVE_COALESCE_SECONDS
                delay = max(GATHER_SECONDS, next_allowed - loop.time())
            self.flusher = loop.call_later(delay, self.flush_soon)

    def flush_soon(self) -> None:
        self.flusher = None
        self.last_flush = asyncio.get_running_loop().time()
        # Held until done: the event loop keeps only a weak reference to a task.
        task = asyncio.create_task(self.flush())
        self.flush_tasks.add(task)
        task.add_done_callback(self.flush_tasks.discard)

    def check_losses(self) -> bool:
        """True when changes are taken for lost: every page is re-synced."""
        if not self.ahead:
            return False
        if time.monotonic() - self.gap_since < LOSS_WAIT_SECONDS:
            self.schedule(LOSS_WAIT_SECONDS)  # look again when the wait is over
            return False
        top = max(self.ahead)
        lost = top - self.seq - len(self.ahead)
        stats["lost_changes"] += lost
        log.warning(
            "project %s: %d live changes were lost before reaching this process (numbers %d-%d "
            "incomplete); re-syncing its %d open pages",
            self.project_id,
            lost,
            self.seq + 1,
            top,
            len(self.pages),
        )
        self.seq, self.ahead, self.gap_since = top, set(), None
        return True

    async def flush(self) -> None:
        if self.flushing:  # one render at a time per project; what arrives meanwhile waits
            self.schedule()
            return
        self.flushing = True
        try:
            await self._flush()
        finally:
            self.flushing = False

    async def _flush(self) -> None:
        lost = self.check_losses()
        changes, self.changes = self.changes, set()
        pages = list(self.pages.values())
        if lost:
            for page in pages:
                page.needs_resync = True
        resyncing = [p for p in pages if p.needs_resync]
        if not pages or not (changes or resyncing):
            return
        loop = asyncio.get_running_loop()
        roles = await loop.run_in_executor(
            renderer, run_rendering, roles_of, self.project_id, [p.user for p in pages]
        )
        for page in pages:
            page.role = roles.get(page.user.pk)
            if page.role is None:  # membership revoked since the page connected
                self.pages.pop(page.consumer, None)
                await page.consumer.refuse()
        pages = [p for p in pages if p.role is not None]
        resyncing = [p for p in resyncing if p.role is not None]
        seq = self.seq
        if changes:
            live = [p for p in pages if not p.needs_resync]
            await self.push(live, changes, seq)
        if resyncing:
            stats["resyncs"] += len(resyncing)
            await self.push(resyncing, {("project", 0)}, seq, whole=True)

    async def push(self, pages: list[Page], changes: set, seq: int, whole: bool = False) -> None:
        if not pages:
            return
        roles = {p.role for p in pages}
        drawers = {p.drawer for p in pages if p.drawer}
        known = {} if whole else self.known
        stats["renders"] += 1
        by_role = await asyncio.get_running_loop().run_in_executor(
            renderer,
            run_rendering,
            fragments.render_changes,
            self.project_id,
            changes,
            roles,
            drawers,
            known,
        )
        for page in pages:
            parts = []
            for part in by_role.get(page.role, []):
                if part.audience == "newest" and not page.newest:
                    continue
                if part.audience == "drawer" and part.target != page.drawer:
                    continue
                if not whole and self.last_html.get((page.role, part.target)) == part.html:
                    continue  # unchanged since it was last sent (the activity list, mostly)
                parts.append(part.html)
            marker = (
                f'<div id="live-seq" data-seq="{seq}" data-from="{page.seq + 1}"'
                f"{' data-resync' if whole else ''} hidden></div>"
            )
            page.needs_resync = False
            if parts or whole:
                # Numbers advance only with what the page was sent: the next push's data-from
                # must follow the last number this page saw, or it would take it for a gap.
                page.seq = seq
                stats["pushes"] += 1
                await page.consumer.push("\n".join([marker, *parts]))
        if not whole:
            for role, parts in by_role.items():
                for part in parts:
                    if part.audience == "all":
                        self.last_html[(role, part.target)] = part.html

    # --- pages -------------------------------------------------------------------------------

    def add(self, consumer, user) -> Page:
        page = Page(consumer, user)
        page.seq = self.seq
        self.pages[consumer] = page
        return page

    def watch(self, consumer, message: dict) -> None:
        """A page says what it shows: {"drawer": id or "", "newest": bool, "seq": n}. A page
        rendered before the latest change (seq below it) is re-synced."""
        page = self.pages.get(consumer)
        if page is None:
            return
        drawer = message.get("drawer")
        page.drawer = drawer if isinstance(drawer, str) and DRAWER_ID.match(drawer) else ""
        page.newest = message.get("newest") is not False
        seq = message.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            page.seq = seq
            if seq < self.seq:
                page.needs_resync = True
                self.schedule(0)
        if message.get("resync") is True:
            page.needs_resync = True
            self.schedule(0)


feeds: dict[tuple[int, int], ProjectFeed] = {}


async def subscribe(project_id: int, consumer, user) -> ProjectFeed:
    loop = asyncio.get_running_loop()
    key = (id(loop), project_id)
    feed = feeds.get(key)
    if feed is not None and feed.loop is not loop:
        # A feed of a loop that is gone whose id a new loop took over (ids are addresses):
        # it can serve nobody.
        feed = None
    if feed is None:
        feed = feeds[key] = ProjectFeed(project_id)
        try:
            await feed.start()
        except BaseException:
            feeds.pop(key, None)
            raise
        finally:
            feed.started.set()
    else:
        await feed.started.wait()
        if feeds.get(key) is not feed:
            raise RuntimeError(f"the live feed of project {project_id} failed to start")
    feed.add(consumer, user)
    return feed


async def unsubscribe(project_id: int, consumer) -> None:
    key = (id(asyncio.get_running_loop()), project_id)
    feed = feeds.get(key)
    if feed is None:
        return
    feed.pages.pop(consumer, None)
    if not feed.pages:
        del feeds[key]
        await feed.stop()
