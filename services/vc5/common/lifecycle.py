"""The skeleton every vc5 daemon shares: `__main__` -> `daemon` -> pure modules.

    __main__.py   parse_args(argv) (argparse only) and main(argv) = lifecycle.main(...)
    daemon.py     the life cycle: logging, the bus name (reply checked), sd_notify,
                  watchdog, signals; calls into pure modules for everything else
    api.py        D-Bus declarations only (dbus-next ServiceInterfaces reading a Publisher)

This module holds the parts that are the same in all four, so they cannot drift:
`main()` sets up logging (journald under systemd, with vc5's MESSAGE_IDs and
VC5_* fields; stderr otherwise) before anything logs; `open_bus()` connects,
exports, and owns the well-known name or fails naming the other owner;
`StopSignals` turns SIGTERM/SIGINT into one event, SIGHUP into a reload and
SIGUSR1 into a dump of every task's stack (an operator's view of a stuck
daemon). Exit codes: 0 stopped on request, 1 failed (systemd's Restart= may
start it again), 2 bad command line (argparse).
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from vc5.common import bus as vbus
from vc5.common import log as vlog

log = logging.getLogger("vc5.common.lifecycle")


def main(service: str, args: Any, run: Callable[[Any], Awaitable[int]], *, debug: bool = False) -> int:
    """Set up logging for `service` (e.g. "vc5-healthd"), then run `run(args)` to completion."""
    vlog.setup(service, logging.DEBUG if debug else logging.INFO)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


async def open_bus(bus_name: str, path: str, *interfaces: Any, queue: bool = True, bus: Any = None):
    """Connect to the system bus, export `interfaces` at `path`, own `bus_name`.

    Raises bus.NameTaken (after disconnecting) when another process owns the name: a
    second instance of a daemon must never run beside the first. `queue=False` fails at
    once instead of waiting in the bus's queue. `bus`: a connection opened earlier with
    bus.connect_system_bus(), for a daemon that must watch a peer before it owns its name.
    """
    bus = bus if bus is not None else await vbus.connect_system_bus()
    vbus.log_refused_calls(asyncio.get_running_loop())
    vbus.export(bus, path, *interfaces)
    try:
        await vbus.own_name(bus, bus_name, queue=queue)
    except vbus.NameTaken:
        bus.disconnect()
        raise
    return bus


class StopSignals:
    """SIGTERM/SIGINT set `stopped`; SIGHUP calls `on_reload()`; SIGUSR1 logs every task's stack."""

    def __init__(self, on_reload: Callable[[], Any] | None = None) -> None:
        self.stopped = asyncio.Event()
        self.signal: str | None = None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig.name)
        if on_reload is not None:
            loop.add_signal_handler(signal.SIGHUP, lambda: _spawn(on_reload()))
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)

    def _stop(self, name: str) -> None:
        self.signal = self.signal or name
        self.stopped.set()

    def stop(self) -> None:
        """Stop as if signalled (e.g. the bus connection was lost)."""
        self.stopped.set()

    async def wait(self) -> None:
        await self.stopped.wait()


_background: set = set()


def _spawn(result: Any) -> None:
    if asyncio.iscoroutine(result):
        task = asyncio.ensure_future(result)
        _background.add(task)           # keep a reference until it is done
        task.add_done_callback(_background.discard)


def dump_tasks() -> None:
    """SIGUSR1: log where every task waits."""
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        log.warning("task %s", out.getvalue())
