"""systemd glue: readiness/status notifications, socket activation, watchdog.

Built on python3-systemd's `systemd.daemon` (sd_notify(3), sd_listen_fds(3));
nothing here hand-rolls the notify protocol. Every function is a harmless
no-op when the process is not run by systemd (no NOTIFY_SOCKET, no LISTEN_FDS,
no WATCHDOG_USEC), so the daemons run the same way from a shell.

Debian 12 ships systemd 252, which has no Type=notify-reload (253+); reload
is still announced with RELOADING=1 + MONOTONIC_USEC so that newer systemd
orders the reload correctly, followed by READY=1 when done (sd_notify(3)).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

from systemd import daemon


def _notify(*assignments: str) -> bool:
    """Send one datagram of newline-separated VAR=value lines; False if not sent."""
    return bool(daemon.notify("\n".join(assignments)))


def _one_line(text: str) -> str:
    # A newline would start a new (bogus) assignment in the datagram.
    return " ".join(str(text).splitlines())


def notify_ready(status: str | None = None) -> bool:
    """READY=1 (start-up or reload finished), optionally with a STATUS= line."""
    if status is None:
        return _notify("READY=1")
    return _notify("READY=1", "STATUS=" + _one_line(status))


def notify_reloading() -> bool:
    """RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC in µs), as systemd >= 253 requires."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return _notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


def notify_stopping() -> bool:
    """STOPPING=1: the service has begun its shutdown."""
    return _notify("STOPPING=1")


def notify_status(text: str) -> bool:
    """STATUS=<text>, shown by `systemctl status`."""
    return _notify("STATUS=" + _one_line(text))


def under_systemd() -> bool:
    """True when started by systemd as a unit (INVOCATION_ID, systemd >= 232) or with NOTIFY_SOCKET."""
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("NOTIFY_SOCKET"))


class ActivatedSocket(socket.socket):
    """A socket inherited through socket activation.

    `name` is its FileDescriptorName= (LISTEN_FDNAMES); libsystemd reports
    "unknown" when the names were not passed.
    """

    name: str = ""


def listen_sockets() -> list[ActivatedSocket]:
    """Sockets passed by systemd (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), in fd order.

    Empty when not socket-activated, or when LISTEN_PID names another process
    (the variables were inherited, not meant for us). The variables are unset
    so that children do not inherit them. Each socket's family and type are
    read from the descriptor itself. A non-socket descriptor is an error.
    """
    named = daemon.listen_fds_with_names(unset_environment=True)
    # sd_listen_fds unsets them in the C environment only; os.environ is a copy.
    for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    sockets = []
    for fd in sorted(named):
        try:
            sock = ActivatedSocket(fileno=fd)
        except OSError as error:
            raise ValueError(f"inherited fd {fd} ({named[fd] or 'unnamed'}) is not a socket: {error}")
        sock.name = named[fd] or ""
        sockets.append(sock)
    return sockets


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if not asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2_000_000


async def watchdog(loop_ok: Callable[[], bool] | None = None) -> None:
    """Ping systemd's watchdog every WATCHDOG_USEC/2 while this event loop runs.

    Run it as a task. Because the ping is sent from the loop itself, a wedged
    loop stops the pings and systemd restarts the service. `loop_ok`, when
    given, is asked before every ping; while it answers False no ping is sent.
    Returns at once if the watchdog is off (no WATCHDOG_USEC, or WATCHDOG_PID
    names another process).
    """
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        if loop_ok is None or loop_ok():
            _notify("WATCHDOG=1")
        await asyncio.sleep(interval)
