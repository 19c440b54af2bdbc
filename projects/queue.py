"""Background work is started by task name once the transaction commits.

Actions never import their app's tasks module: tasks import actions (at module top), and an
action that must start work names the task instead. Each app's AppConfig.ready() imports its
tasks, so every name is registered before the first request or worker job.

Where a task goes. With a real broker (Redis, the scaled mode) every process sends it there. In
the embedded mode the broker is in memory inside `manage.py serve`, the one process with a
worker: another process (`manage.py kargo`, `manage.py shell`) would put the task into a memory
broker of its own that nothing reads. Such a process wakes the server instead, with a datagram
"<task name> <id>" on a Unix socket the server listens on (wake_socket_path(), under DATA_DIR),
and the server enqueues that task into its own broker.

Why a Unix datagram socket: sending is one sendto() that never blocks and needs no connection,
no reply and no polling on either side; who may send is the file's business (0600, in a 0700
directory: the server's user only); and with no server listening the send fails at once
instead of being queued somewhere. A wake that is lost (no server, a full socket buffer) costs
only time: the database is the truth, and the server's periodic reconcile starts what no task
did. The server trusts nothing in a message: a task name from WAKE_TASKS and one positive
integer id, or it is dropped; the task then does what a reconcile sweep would.
"""

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

# The tasks a wake may name (by name: this app imports none of the apps above it); each takes
# one id, and each only looks at the database for work to do.
WAKE_TASKS = frozenset(
    {
        "stages.tasks.start_next_promotion",
        "stages.tasks.resume_promotion",
        "stages.tasks.refresh_stage",
        "stages.tasks.auto_promote",
        "freight.tasks.discover_warehouse",
        "verification.tasks.start_verification",
        "verification.tasks.measure_run",
    }
)
WAKE_MAX_BYTES = 128
_WAKE = re.compile(rb"([a-z_.]{1,64}) ([1-9][0-9]{0,17})")  # an id below 2**63

# Set by `manage.py serve` when this process runs a worker of its own (serve.start_worker_threads).
local_worker = False


def enqueue(task_name: str, *args: int) -> None:
    """Run Celery task `task_name` with `args` (IDs only) now: through the broker, or, in a process
    of the embedded mode that has no worker, by waking the server."""
    app = current_app
    if app.conf.task_always_eager or local_worker or not in_memory_broker():
        app.tasks[task_name].delay(*args)
    else:
        send_wake(task_name, *args)


def enqueue_on_commit(task_name: str, *args: int) -> None:
    """enqueue() after the current transaction commits; at once when there is none."""
    transaction.on_commit(partial(enqueue, task_name, *args))


def enqueue_later_on_commit(task_name: str, delay: float, *args: int) -> None:
    """The task after `delay` seconds, once the transaction commits: a broker countdown, so no
    worker sleeps through it. A process of the embedded mode without a worker cannot hold a
    countdown: it wakes the server at once, and the task finds nothing due yet (the periodic
    reconcile covers it)."""

    def send() -> None:
        app = current_app
        if app.conf.task_always_eager or local_worker or not in_memory_broker():
            app.tasks[task_name].apply_async(args, countdown=delay)
        else:
            send_wake(task_name, *args)

    transaction.on_commit(send)


def in_memory_broker() -> bool:
    return str(current_app.conf.broker_url or "").startswith("memory://")


def wake_socket_path() -> Path:
    return settings.DATA_DIR / "run" / "wake.sock"


def wake_message(task_name: str, *ids: int) -> bytes:
    message = f"{task_name} {' '.join(str(i) for i in ids)}".encode()
    if parse_wake(message) != (task_name, *ids):
        raise ValueError(f"{task_name}{ids} cannot be sent as a wake")
    return message


def parse_wake(data: bytes) -> tuple[str, int] | None:
    """(task name, id) of a valid wake message, else None."""
    if len(data) > WAKE_MAX_BYTES:
        return None
    match = _WAKE.fullmatch(data)
    if match is None or match[1].decode() not in WAKE_TASKS:
        return None
    return match[1].decode(), int(match[2])


def send_wake(task_name: str, *ids: int) -> bool:
    """Ask the embedded server to run the task; False when no server took the message."""
    message = wake_message(task_name, *ids)
    try:
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
            _address(wake_socket_path()) as address,
        ):
            sock.setblocking(False)
            sock.sendto(message, address)
    except OSError as exc:
        log.debug(
            "no server took the wake %r (%s); its reconcile will start the work", message, exc
        )
        return False
    return True


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """`path` as an AF_UNIX address. One holds at most 107 bytes; a longer path is reached through
    this process's descriptor of its directory (/proc/self/fd/<n>/<name>, Linux)."""
    if len(os.fsencode(path)) < 108:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _listening(path: Path) -> bool:
    """Whether a live server is bound to the socket at `path` (a dead one leaves its file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe, _address(path) as address:
        try:
            probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


class WakeListener:
    """The server's end: a thread that enqueues each valid wake into this process's broker."""

    def __init__(self, path: Path, deliver: Callable[[str, int], None] | None = None):
        self.path = path
        self.deliver = deliver or (lambda name, id_: current_app.tasks[name].delay(id_))
        self.sock: socket.socket | None = None
        self.stopped = threading.Event()

    def start(self) -> bool:
        """Bind and listen; False (with a warning) when another live server holds the socket."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        if self.path.exists() or self.path.is_symlink():
            if _listening(self.path):
                log.warning(
                    "another server listens on %s: wakes go to it, not to this one", self.path
                )
                return False
            self.path.unlink()  # left by a server that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with _address(self.path) as address:
            sock.bind(address)
        self.path.chmod(0o600)
        self.inode = self.path.stat().st_ino
        # Woken once a second to notice close(); a wake is handled the moment it arrives.
        sock.settimeout(1.0)
        self.sock = sock
        threading.Thread(target=self._serve, daemon=True, name="wake-listener").start()
        return True

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                data = self.sock.recv(WAKE_MAX_BYTES + 1)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            wake = parse_wake(data)
            if wake is None:
                log.warning("dropped a malformed wake message (%d bytes)", len(data))
                continue
            try:
                self.deliver(*wake)
            except Exception:
                log.exception("enqueuing the wake %r failed", data)

    def close(self) -> None:
        self.stopped.set()
        if self.sock is None:
            return
        try:
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
        self.sock.close()
