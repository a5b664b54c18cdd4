"""Maintenance: take this balancer out of the routers' ECMP and keep it out (docs/bgp.md, "Maintenance").

`vc5ctl maintenance on` (org.vc5.Bgp1.Manager.SetMaintenance(true)): the routes
are re-advertised with the GRACEFUL_SHUTDOWN community 65535:0 (RFC 8326 §3:
receivers lower the route's preference, so traffic moves to the other
balancers first) for `graceful_shutdown` seconds, then withdrawn; the sessions
stay up. The switch is a file in the state directory (StateDirectory=vc5-bgpd),
written before anything is sent, so a restart or a reboot keeps the balancer
out until `vc5ctl maintenance off` removes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

log = logging.getLogger("vc5.bgpd")

OFF, DRAINING, ON = "off", "draining", "on"
FILENAME = "maintenance"
DEFAULT_STATE_DIR = "/var/lib/vc5-bgpd"


def default_state_dir() -> str:
    """systemd's $STATE_DIRECTORY (the first, if several), else /var/lib/vc5-bgpd."""
    return (os.environ.get("STATE_DIRECTORY") or DEFAULT_STATE_DIR).split(":")[0]


def load(path: str) -> bool:
    """Is maintenance on? A file that exists but cannot be read counts as on (fail-safe)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        log.warning("cannot read the maintenance state %s (%s): staying in maintenance", path, e)
    return True


def save(path: str, on: bool, now: float | None = None) -> None:
    """Write (on) or remove (off) the switch, durably; OSError if that fails."""
    directory = os.path.dirname(path) or "."
    if on:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now if now is not None else time.time()))
            f.write(f"maintenance on since {stamp} (vc5ctl maintenance off to end it)\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Maintenance:
    """The switch and its drain timer. `changed()` is called after every change of `state`."""

    def __init__(self, path: str, changed=lambda: None):
        self.path = path
        self.changed = changed
        self.state = ON if load(path) else OFF
        self._task: asyncio.Task | None = None

    @property
    def withdrawn(self) -> bool:
        """Nothing may be offered to peers."""
        return self.state == ON

    @property
    def graceful(self) -> bool:
        """Routes carry GRACEFUL_SHUTDOWN."""
        return self.state == DRAINING

    async def turn_on(self, drain_s: float, anything_advertised: bool) -> None:
        save(self.path, True)
        if self.state != OFF:
            return
        if drain_s > 0 and anything_advertised:
            log.warning("maintenance on: advertising with GRACEFUL_SHUTDOWN (RFC 8326) for %.1f s, then "
                        "withdrawing", drain_s)
            self._set(DRAINING)
            self._task = asyncio.ensure_future(self._finish(drain_s))
        else:
            log.warning("maintenance on: withdrawing every route")
            self._set(ON)

    async def _finish(self, drain_s: float) -> None:
        await asyncio.sleep(drain_s)
        self._task = None
        log.warning("maintenance on: graceful shutdown period over, withdrawing every route")
        self._set(ON)

    async def turn_off(self) -> None:
        save(self.path, False)
        self.cancel()
        if self.state != OFF:
            log.warning("maintenance off: advertising the VIPs that are up and forwardable again")
            self._set(OFF)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _set(self, state: str) -> None:
        self.state = state
        self.changed()
