"""The embedded mode across processes: a promotion the CLI (`manage.py kargo`, another process)
creates reaches the worker inside `manage.py serve` (SQLite, memory:// broker) through the
server's wake socket, not at the next periodic reconcile; one created while no server runs is
started by the reconcile of the server that starts next."""

import os
import signal
import sqlite3
import stat
import time

import pytest

from tests.e2e.servers import (
    ServerError,
    ServerProcess,
    embedded_env,
    free_port,
    manage,
    seed_demo,
    serve_argv,
)


def phase_of(db, name: str) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("select phase from stages_promotion where name = ?", (name,)).fetchone()
    return row[0] if row else None


def wait_for_end(server: ServerProcess, db, name: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (phase := phase_of(db, name)) in ("Pending", "Running"):
        if time.monotonic() > deadline:
            raise ServerError(
                f"promotion {name} still {phase} after {timeout:.0f}s:\n{server.tail()}"
            )
        time.sleep(0.2)
    return phase


def start_serve(env: dict, log_dir, name: str, reconcile_every: str) -> ServerProcess:
    port = free_port()
    server = ServerProcess(
        name, serve_argv(port), {**env, "KARGO_RECONCILE_INTERVAL": reconcile_every}, log_dir
    )
    server.wait_for_http(f"http://127.0.0.1:{port}/healthz")
    return server


def promote(env: dict, stage: str, *wait: str) -> tuple[str, str]:
    """`kargo promote` in its own process: (promotion name, output)."""
    out = manage(
        env, "kargo", "promote", "--project", "kargo-demo", "--stage", stage,
        "--warehouse", "guestbook", *wait,
    )  # fmt: skip
    return out.split("promotion/", 1)[1].split()[0], out


@pytest.fixture
def embedded(tmp_path):
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    env = embedded_env(data_dir)
    try:
        seed_demo(env)
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    servers: list[ServerProcess] = []
    yield env, data_dir, servers
    for server in servers:
        server.stop()


def test_a_cli_promotion_wakes_the_embedded_server_and_a_lost_wake_is_reconciled(
    embedded, tmp_path
):
    env, data_dir, servers = embedded
    db = data_dir / "db.sqlite3"
    # Reconcile once an hour: only the wake can start this promotion in time.
    servers.append(start_serve(env, tmp_path, "serve-1", reconcile_every="3600"))
    sock = data_dir / "run" / "wake.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700

    try:
        name, out = promote(env, "test", "--wait", "--timeout", "60")
    except ServerError as exc:
        pytest.fail(f"{exc}\n--- serve\n{servers[0].tail()}", pytrace=False)
    assert out.splitlines()[-1].startswith("Succeeded"), out
    assert f"runs promotion {name}" in servers[0].log()  # its worker ran it

    # The server dies (its socket file stays); the CLI's wake finds no one.
    os.killpg(servers[0].pid, signal.SIGKILL)
    servers[0].stop()
    name, _ = promote(env, "uat")
    assert phase_of(db, name) == "Pending"
    # The next server's reconcile finds it.
    servers.append(start_serve(env, tmp_path, "serve-2", reconcile_every="0.5"))
    assert wait_for_end(servers[1], db, name) == "Succeeded"
    assert "another server listens" not in servers[1].log()  # it took over the dead one's socket
