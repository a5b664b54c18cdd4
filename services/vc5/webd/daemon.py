"""vc5-webd's process: sockets, the bus, signals, systemd notifications.

Under systemd the listening socket comes from vc5-webd.socket (socket
activation): the unit runs with PrivateNetwork=yes and
RestrictAddressFamilies=AF_UNIX, so webd must never create an AF_INET/AF_INET6
socket itself; it serves on the inherited descriptor (aiohttp SockSite, which
creates no socket). `--listen ADDR:PORT` (tests, development) is the only way
webd opens a TCP socket of its own.

Signals (vc5.common.lifecycle.StopSignals): SIGTERM/SIGINT stop; SIGHUP
re-reads the configuration file (RELOADING=1 ... READY=1, as `systemctl
reload vc5-webd`); SIGUSR1 logs every task's stack. Logging is vc5's
(vc5.common.log: journald with MESSAGE_IDs under systemd, stderr otherwise),
set up by vc5.common.lifecycle.main before anything logs.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from vc5.common import bus as vbus
from vc5.common import lifecycle, sd

from .app import make_app
from .reader import BusReader, ConfigCache, DemoReader

log = logging.getLogger("vc5.webd")
BUS_RETRY_S = 2.0


def parse_listen(text: str) -> tuple[str | None, int]:
    """"ADDR:PORT", ":PORT" or "[v6]:PORT" -> (host or None for all, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r}: expected ADDR:PORT, :PORT or [IPv6]:PORT")
    host = host.strip("[]") or None
    return host, int(port)


async def _connect_bus_forever(reader: BusReader, stopping: asyncio.Event) -> None:
    """Connect to the system bus, retrying: meanwhile every daemon shows as absent."""
    while not stopping.is_set():
        try:
            bus = await vbus.connect_system_bus()
        except Exception as e:
            log.warning("system bus not reachable (%s); retrying in %.0f s", e, BUS_RETRY_S)
            try:
                await asyncio.wait_for(stopping.wait(), BUS_RETRY_S)
            except asyncio.TimeoutError:
                pass
            continue
        await reader.start(bus)
        return


async def main(args) -> int:
    """The life cycle (vc5.common.lifecycle.main runs it): exit 1 if a socket cannot be served."""
    try:
        return await run(args.listen, args.config, args.demo, args.interval)
    except OSError as e:
        print(f"vc5-webd: {e}", file=sys.stderr)
        return 1


async def _serve(runner: web.AppRunner, listen: str | None, config: ConfigCache) -> str:
    """Start the sites: the inherited sockets under systemd, else --listen (or config, or :80)."""
    sockets = sd.listen_sockets()
    if sockets:
        sites = [web.SockSite(runner, sock) for sock in sockets]
    else:
        text = listen or getattr(config.config, "webserver", None) or ":80"
        host, port = parse_listen(text)
        sites = [web.TCPSite(runner, host, port, reuse_address=True)]
    for site in sites:
        await site.start()
    return ", ".join(site.name for site in sites)


async def run(listen: str | None = None, config_path: str | None = None, demo: bool = False,
              interval: float = 2.0) -> int:
    config = ConfigCache(config_path)
    reader = DemoReader(interval, config) if demo else BusReader(interval, config)
    webroot = None
    if not demo:
        await asyncio.to_thread(config.load)
        webroot = getattr(config.config, "webroot", None)
    runner = web.AppRunner(make_app(reader, webroot=webroot), access_log=None, handle_signals=False)
    await runner.setup()
    where = await _serve(runner, listen, config)

    async def reload():
        sd.notify_reloading()
        await reader.reload_config()
        sd.notify_ready(f"serving on {where}; configuration {config.path}"
                        + (f" NOT loaded: {config.error}" if config.error else ""))

    signals = lifecycle.StopSignals(on_reload=reload)
    if demo:
        await reader.start()
    else:
        connector = asyncio.create_task(_connect_bus_forever(reader, signals.stopped))
    watchdog = asyncio.create_task(sd.watchdog())
    sd.notify_ready(f"serving on {where}")
    log.info("serving on %s%s", where, " (demo data)" if demo else "")
    await signals.wait()
    sd.notify_stopping()
    watchdog.cancel()
    if not demo:
        connector.cancel()
    await reader.close()
    await runner.cleanup()
    return 0
