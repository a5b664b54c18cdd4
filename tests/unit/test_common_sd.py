"""vc5.common.sd against a fake NOTIFY_SOCKET and real inherited descriptors."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from vc5.common import sd

SERVICES = os.path.join(os.path.dirname(__file__), "..", "..", "services")


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd's; returns a function giving the next datagram."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    for var in ("WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID"):
        monkeypatch.delenv(var, raising=False)

    def receive(timeout=5.0):
        sock.settimeout(timeout)
        return sock.recv(4096)

    receive.socket = sock
    yield receive
    sock.close()


def no_more(receive):
    receive.socket.setblocking(False)
    try:
        data = receive.socket.recv(4096)
    except BlockingIOError:
        return True
    pytest.fail(f"unexpected datagram {data!r}")


def test_notify_ready(notify_socket):
    assert sd.notify_ready() is True
    assert notify_socket() == b"READY=1"


def test_notify_ready_with_status(notify_socket):
    sd.notify_ready("serving 3 VIPs\nall healthy")
    assert notify_socket() == b"READY=1\nSTATUS=serving 3 VIPs all healthy"


def test_notify_reloading_carries_monotonic_usec(notify_socket):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    sd.notify_reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = notify_socket().split(b"\n")
    assert first == b"RELOADING=1"
    key, value = second.split(b"=")
    assert key == b"MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_notify_stopping_and_status(notify_socket):
    sd.notify_stopping()
    assert notify_socket() == b"STOPPING=1"
    sd.notify_status("draining")
    assert notify_socket() == b"STATUS=draining"


def test_without_notify_socket_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd.notify_ready() is False


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}, True),
    ({"NOTIFY_SOCKET": "/run/systemd/notify"}, True),
])
def test_under_systemd(monkeypatch, env, expected):
    for var in ("INVOCATION_ID", "NOTIFY_SOCKET"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert sd.under_systemd() is expected


def test_watchdog_pings_every_half_interval(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    async def run():
        task = asyncio.create_task(sd.watchdog())
        try:
            loop = asyncio.get_running_loop()
            for _ in range(3):
                assert await loop.run_in_executor(None, notify_socket) == b"WATCHDOG=1"
        finally:
            task.cancel()

    asyncio.run(run())
    assert sd.watchdog_interval() == 0.1  # WATCHDOG_USEC/2, in seconds


def test_watchdog_silent_while_loop_not_ok(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    healthy = {"ok": False}
    asked = []

    def loop_ok():
        asked.append(1)
        return healthy["ok"]

    async def run():
        task = asyncio.create_task(sd.watchdog(loop_ok))
        deadline = time.monotonic() + 10
        while len(asked) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(asked) >= 3
        no_more(notify_socket)
        healthy["ok"] = True
        notify_socket.socket.setblocking(True)
        data = await asyncio.get_running_loop().run_in_executor(None, notify_socket)
        task.cancel()
        return data

    assert asyncio.run(run()) == b"WATCHDOG=1"


@pytest.mark.parametrize("env", [{}, {"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"},
                                 {"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "junk"}])
def test_watchdog_off(notify_socket, monkeypatch, env):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert asyncio.run(asyncio.wait_for(sd.watchdog(), 5)) is None
    no_more(notify_socket)


CHILD = textwrap.dedent("""
    import json, os, socket, sys
    from vc5.common import sd
    sockets = sd.listen_sockets()
    report = [{"name": s.name, "family": int(s.family), "type": int(s.type), "fd": s.fileno(),
               "address": list(s.getsockname())} for s in sockets]
    left = [v for v in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES") if v in os.environ]
    report.append({"env_left": left})
    print(json.dumps(report), flush=True)
    if sockets:
        conn, _ = sockets[0].accept()
        conn.sendall(b"hello from " + sockets[0].name.encode())
        conn.close()
""")


def run_child(listener, env_extra, *more):
    """Start CHILD with `listener` (then `more`) duplicated to fd 3, 4, ... as systemd would pass them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    env.update(env_extra)
    env["PYTHONPATH"] = SERVICES
    fds = [s.fileno() for s in (listener,) + more]
    # bash duplicates the sockets to fd 3.., sets LISTEN_PID to its own pid and execs (pid unchanged).
    dups = " ".join(f"{3 + i}<&{fd} {fd}<&-" for i, fd in enumerate(fds))
    script = f'exec {dups}; export LISTEN_PID=${{LISTEN_PID:-$$}}; exec "$0" -c "$1"'
    return subprocess.Popen(["/bin/bash", "-c", script, sys.executable, CHILD], pass_fds=fds, env=env,
                            stdout=subprocess.PIPE, text=True)


def test_listen_sockets_receives_named_socket():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    child = run_child(listener, {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"})
    try:
        report = json.loads(child.stdout.readline())
        assert report[:-1] == [{"name": "web", "family": int(socket.AF_INET), "type": int(socket.SOCK_STREAM),
                                "fd": 3, "address": ["127.0.0.1", port]}]
        assert report[-1] == {"env_left": []}
        listener.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            assert conn.recv(100) == b"hello from web"
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()


def test_listen_sockets_several_in_fd_order(tmp_path):
    tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp.bind(("::1", 0))
    tcp.listen()
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(str(tmp_path / "sock"))
    child = run_child(tcp, {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:metrics"}, unix)
    try:
        report = json.loads(child.stdout.readline())[:-1]
        assert [(r["fd"], r["name"], r["family"], r["type"]) for r in report] == [
            (3, "web", int(socket.AF_INET6), int(socket.SOCK_STREAM)),
            (4, "metrics", int(socket.AF_UNIX), int(socket.SOCK_DGRAM))]
        assert "".join(report[1]["address"]) == str(tmp_path / "sock")  # AF_UNIX: a str, listed
    finally:
        child.kill()
        child.wait()
        tcp.close()
        unix.close()


def test_listen_sockets_ignores_fds_meant_for_another_process():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    child = run_child(listener, {"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    try:
        assert json.loads(child.stdout.readline())[:-1] == []
        assert child.wait(timeout=30) == 0
    finally:
        listener.close()
        child.kill()
        child.wait()


def test_listen_sockets_empty_when_not_activated(monkeypatch):
    for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        monkeypatch.delenv(var, raising=False)
    assert sd.listen_sockets() == []
