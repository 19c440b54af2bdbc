"""`manage.py serve`: the whole dashboard in one process: daphne (HTTP + websockets) with a Celery
worker and the beat scheduler in threads beside it. With REDIS_URL set, separate `celery -A
kargo_ui worker` processes may run too (or instead: --no-worker)."""

import asyncio
import ipaddress
import logging
import threading

from celery.beat import EmbeddedService
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kargo_ui.asgi import application
from kargo_ui.celery import app
from projects import live

log = logging.getLogger(__name__)


def start_worker_threads(concurrency: int = 4) -> list:
    """A Celery worker and beat inside this process, on whatever broker the settings name."""
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
        if not opts["no_worker"]:
            start_worker_threads()

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

        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            ready_callable=ready,
        ).run()


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
