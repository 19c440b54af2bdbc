"""`manage.py serve`: the whole dashboard in one process: daphne (HTTP + websockets) with a Celery
worker and the beat scheduler in threads beside it. With REDIS_URL set, separate `celery -A
kargo_ui worker` processes may run too (or instead: --no-worker).

The start of a request has a budget too. Twisted, under daphne, reads at most MAX_LINE bytes
per line and MAX_HEADERS_SIZE for the request line and headers together; past them it drops
the connection or answers a bare 400. Here its connections answer what went wrong instead:
414 URI Too Long for a request line over MAX_LINE, 431 Request Header Fields Too Large for a
header line over MAX_LINE, headers over MAX_HEADERS_SIZE or more than MAX_HEADERS of them.

In demo mode (KARGO_DEMO) it also runs the demo's image registry (kargo_ui.demo_registry) as a
child process, when docker-registry is installed, and stops it on exit; a production serve
never does.
"""

import asyncio
import ipaddress
import logging
import threading

from celery.beat import EmbeddedService
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from twisted.web import http  # after daphne.server, which installs the asyncio reactor

from kargo_ui import demo_registry
from kargo_ui.asgi import application
from kargo_ui.celery import app
from projects import live, queue

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024
MAX_HEADERS_SIZE = 32 * 1024
MAX_HEADERS = 500  # twisted's own count limit, kept
# How long a refused client may go on sending before its connection is cut.
LINGER_SECONDS = 5


class LimitedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 connection, answering 414 and 431 where it would drop or say 400."""

    MAX_LENGTH = MAX_LINE
    totalHeadersSize = MAX_HEADERS_SIZE
    maxHeaders = MAX_HEADERS
    _linger = None

    def _reading_request_line(self) -> bool:
        return bool(self._HTTPChannel__first_line)  # twisted's own "next line starts a request"

    def lineLengthExceeded(self, line):
        if self._reading_request_line():
            self._refuse(414, b"URI Too Long", f"the request line is over {MAX_LINE} bytes")
        else:
            self._refuse(
                431, b"Request Header Fields Too Large", f"a header line is over {MAX_LINE} bytes"
            )

    def lineReceived(self, line):
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse(
                431,
                b"Request Header Fields Too Large",
                f"the request line and headers are over {MAX_HEADERS_SIZE} bytes",
            )
            return
        super().lineReceived(line)

    def headerReceived(self, line):
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(
                431, b"Request Header Fields Too Large", f"more than {MAX_HEADERS} headers"
            )
            return False
        return super().headerReceived(line)

    def _refuse(self, status: int, reason: bytes, detail: str) -> None:
        body = f"{status} {reason.decode()}: {detail}\n".encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        # Close only our side and drop what the client still sends: a socket closed with
        # unread input is reset by the kernel, and the client would never read the answer.
        self.dataReceived = self.lineReceived = self.rawDataReceived = lambda *args: None
        self._networkProducer.unregisterProducer()
        self.transport.loseWriteConnection()
        self._linger = self.callLater(LINGER_SECONDS, self.transport.abortConnection)

    def connectionLost(self, reason):
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


def _limited_http_protocol():
    # What twisted's HTTPFactory builds for each connection (its _genericHTTPChannelProtocol-
    # Factory), around a LimitedHTTPChannel instead of an HTTPChannel.
    return http._GenericHTTPChannelProtocol(LimitedHTTPChannel())


class LimitedServer(Server):
    """daphne's Server, whose HTTP connections are LimitedHTTPChannels. `run()` makes its own
    HTTP factory; the setter gives that factory our protocol before anything connects."""

    @property
    def http_factory(self):
        return self._limited_http_factory

    @http_factory.setter
    def http_factory(self, factory):
        factory.protocol = _limited_http_protocol
        self._limited_http_factory = factory


def start_worker_threads(concurrency: int = 4) -> list:
    """A Celery worker and beat inside this process, on whatever broker the settings name."""
    queue.local_worker = True  # this process's tasks go to its own broker (projects.queue)
    worker = app.WorkController(
        pool_cls="threads",
        concurrency=concurrency,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    threading.Thread(target=worker.start, daemon=True, name="celery-worker").start()
    schedule = settings.DATA_DIR / "celerybeat-schedule"
    beat = EmbeddedService(app, thread=True, schedule_filename=str(schedule))
    beat.start()
    return [worker, beat]


def listen_for_wakes() -> queue.WakeListener | None:
    """With the in-process (memory://) broker only this process's worker can run a task: other
    processes (`manage.py kargo`, `manage.py shell`) wake it through a socket (projects.queue)."""
    if not queue.in_memory_broker():
        return None  # a shared broker: every process enqueues there itself
    listener = queue.WakeListener(queue.wake_socket_path())
    return listener if listener.start() else None


class Command(BaseCommand):
    help = "Serve the dashboard with its worker and scheduler in one process"

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not run a Celery worker and beat in this process",
        )

    def handle(self, *args, **opts):
        host, port = opts["host"], opts["port"]
        if settings.DEMO_MODE and not is_loopback_host(host):
            raise CommandError(
                "demo mode (KARGO_DEMO) serves only on loopback; use --host 127.0.0.1"
            )
        registry = self.start_demo_registry() if settings.DEMO_MODE else None
        listener = None
        if not opts["no_worker"]:
            start_worker_threads()
            listener = listen_for_wakes()

        def ready():
            # Live updates from worker threads are scheduled on daphne's own loop (see projects.live).
            live.server_loop = asyncio.get_event_loop()
            url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
            self.stdout.write(f"kargo_ui is serving on {url}", ending="\n")
            if settings.DEMO_MODE:
                self.stdout.write(
                    f"demo login: user '{settings.DEMO_USERNAME}', password '{settings.DEMO_USERNAME}'"
                )
            self.stdout.flush()

        try:
            LimitedServer(
                application=application,
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=True,
                ready_callable=ready,
            ).run()
        finally:
            if listener is not None:
                listener.close()
            if registry is not None:
                registry.stop()

    def start_demo_registry(self) -> demo_registry.DemoRegistry | None:
        """The demo's image registry, running until this process stops it; None (and a line
        saying why) when it cannot run, in which case the demo image's discovery fails."""
        if not demo_registry.available() or not demo_registry.images_present():
            # No registry to run (docker-registry missing), or the demo was seeded without its
            # images (--no-registry, as the tests seed it): nothing tracks the demo image.
            return None
        try:
            registry = demo_registry.DemoRegistry().start()
        except demo_registry.RegistryUnavailable as exc:
            self.stdout.write(self.style.WARNING(f"demo image registry not started: {exc}"))
            return None
        self.stdout.write(f"demo image registry on {registry.host} (stopped when serve stops)")
        return registry


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
