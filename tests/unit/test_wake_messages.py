"""The embedded server's wake socket (projects.queue): what a wake message may say, and a
listener that passes on only those, on a socket only its user can reach."""

import socket
import stat
import time

import pytest

from projects import queue


def test_a_wake_names_an_allowed_task_and_one_id():
    assert queue.parse_wake(b"stages.tasks.start_next_promotion 12") == (
        "stages.tasks.start_next_promotion",
        12,
    )
    assert queue.wake_message("stages.tasks.resume_promotion", 7) == (
        b"stages.tasks.resume_promotion 7"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"stages.tasks.start_next_promotion",  # no id
        b"stages.tasks.start_next_promotion 12 13",  # two
        b"stages.tasks.start_next_promotion 0",
        b"stages.tasks.start_next_promotion -1",
        b"stages.tasks.start_next_promotion 012",
        b"stages.tasks.start_next_promotion 1.5",
        b"stages.tasks.start_next_promotion 1e3",
        b"stages.tasks.start_next_promotion 99999999999999999999",  # beyond 64 bits
        b"stages.tasks.start_next_promotion  12",
        b"stages.tasks.start_next_promotion 12\n",
        b"stages.tasks.start_next_promotion\t12",
        b'{"task": "stages.tasks.start_next_promotion", "args": [12]}',
        b"stages.tasks.reconcile 1",  # a real task, not one a wake may name
        b"celery.backend_cleanup 1",
        b"os.system 1",
        b"STAGES.TASKS.START_NEXT_PROMOTION 12",
        "stages.tasks.start_next_promotion \u0661\u0662".encode(),  # Arabic-Indic digits
        b"stages.tasks.start_next_promotion 1" + b"0" * 200,
        b"\xff\xfe",
    ],
)
def test_anything_else_is_not_a_wake(data):
    assert queue.parse_wake(data) is None


def test_a_task_a_wake_may_not_name_cannot_be_sent():
    with pytest.raises(ValueError):
        queue.wake_message("stages.tasks.reconcile", 1)
    with pytest.raises(ValueError):
        queue.wake_message("stages.tasks.start_next_promotion", True)


def test_the_listener_passes_on_valid_wakes_only_on_a_socket_for_its_user_only(tmp_path):
    path = tmp_path / "run" / "wake.sock"
    got = []
    listener = queue.WakeListener(path, deliver=lambda name, id_: got.append((name, id_)))
    assert listener.start()
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for data in (b"os.system 1", b"x" * 4096, b"stages.tasks.start_next_promotion 0"):
                sender.sendto(data, str(path))
            sender.sendto(b"stages.tasks.start_next_promotion 42", str(path))
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [("stages.tasks.start_next_promotion", 42)]
        # A second server on the same directory leaves the live one's socket alone.
        assert not queue.WakeListener(path, deliver=got.append).start()
        assert stat.S_ISSOCK(path.stat().st_mode)
    finally:
        listener.close()
    assert not path.exists()


def test_a_socket_left_by_a_dead_server_is_replaced(tmp_path):
    path = tmp_path / "run" / "wake.sock"
    path.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))
    dead.close()  # its file stays, as after kill -9
    got = []
    listener = queue.WakeListener(path, deliver=lambda name, id_: got.append(id_))
    assert listener.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"freight.tasks.discover_warehouse 3", str(path))
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [3]
    finally:
        listener.close()


def test_a_data_dir_deeper_than_a_socket_address_allows_still_works(tmp_path, settings):
    settings.DATA_DIR = tmp_path / ("d" * 60) / ("e" * 60)
    path = queue.wake_socket_path()
    assert len(str(path)) > 107
    got = []
    listener = queue.WakeListener(path, deliver=lambda name, id_: got.append(id_))
    assert listener.start()
    try:
        assert queue.send_wake("stages.tasks.refresh_stage", 5)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [5]
    finally:
        listener.close()


def test_a_wake_with_no_server_is_dropped_quietly(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    assert queue.send_wake("stages.tasks.start_next_promotion", 1) is False
