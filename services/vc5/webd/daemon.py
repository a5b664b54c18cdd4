"""vc5-webd's process: sockets, the bus, signals, systemd notifications.

Under systemd the listening socket comes from vc5-webd.socket (socket
activation): the unit runs with PrivateNetwork=yes and
RestrictAddressFamilies=AF_UNIX, so webd must never create an AF_INET/AF_INET6
socket itself; it serves on the inherited descriptor (vc5.webd.guard.Listener,
which creates no socket). `--listen ADDR:PORT` (tests, development) is the only
way webd opens a TCP socket of its own. Every listener is served through
vc5.webd.guard (connection cap, header/idle/request deadlines), not aiohttp's
sites, whose protocol factory has no header deadline.

`webserver:` in the configuration chooses the address of vc5-webd.socket
through vc5-webd-generator (units/vc5-webd-generator, docs/observability.md
"Narrowing the console"); webd warns when the socket it inherited is not the
one the configuration names (edited without `systemctl daemon-reload`).

Signals (vc5.common.lifecycle.StopSignals): SIGTERM/SIGINT stop; SIGHUP
re-reads the configuration file (RELOADING=1 ... READY=1, as `systemctl
reload vc5-webd`); SIGUSR1 logs every task's stack. Logging is vc5's
(vc5.common.log: journald with MESSAGE_IDs under systemd, stderr otherwise),
set up by vc5.common.lifecycle.main before anything logs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

from aiohttp import web

from vc5.common import bus as vbus
from vc5.common import lifecycle, sd
from vc5.common import limits as vlimits

from . import guard as vguard
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
        return await run(args.listen, args.config, args.demo, args.interval, limits=limits_from_args(args),
                         allowed_hosts=args.allowed_hosts)
    except OSError as e:
        print(f"vc5-webd: {e}", file=sys.stderr)
        return 1


def limits_from_args(args) -> vguard.Limits:
    cap = getattr(args, "max_connections", None) or vguard.default_max_connections()
    return vguard.Limits(max_connections=cap, header_timeout=args.header_timeout,
                         idle_timeout=args.idle_timeout)


def _tcp_socket(text: str) -> socket.socket:
    """--listen's (or the config's) socket: ADDR:PORT, or :PORT on every address (IPv6 dual-stack)."""
    host, port = parse_listen(text)
    if host is None:
        if socket.has_dualstack_ipv6():
            return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True,
                                        backlog=128)
        return socket.create_server(("0.0.0.0", port), backlog=128)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def _serve(protocol: vguard.Guard, listen: str | None, config: ConfigCache) -> tuple[list, bool]:
    """Listen on the inherited sockets, else --listen (or config, or :80): (listeners, activated)."""
    sockets = sd.listen_sockets()
    activated = bool(sockets)
    if activated:
        _check_webserver(sockets, config)
    else:
        sockets = [_tcp_socket(listen or getattr(config.config, "webserver", None) or ":80")]
    return [vguard.Listener(protocol, sock) for sock in sockets], activated


def _check_webserver(sockets, config: ConfigCache) -> None:
    """Warn if the configuration's `webserver:` is not what vc5-webd.socket listens on."""
    text = getattr(config.config, "webserver", None)
    if not text:
        return
    host, port = parse_listen(text)
    bound = {s.getsockname()[:2] for s in sockets if isinstance(s.getsockname(), tuple)}
    every = {"0.0.0.0", "::"}
    if not any(p == port and (h == host or (host is None and h in every)) for h, p in bound):
        log.warning("webserver: %s in %s, but vc5-webd.socket listens on %s: run `systemctl "
                    "daemon-reload` and `systemctl restart vc5-webd.socket` (docs/observability.md, "
                    "\"Narrowing the console\")",
                    text, config.path, ", ".join(f"{h}:{p}" for h, p in sorted(bound)))


async def _stop(listeners: list, runner: web.AppRunner) -> None:
    """As aiohttp's site.stop(): stop accepting, close every connection, then the application."""
    for listener in listeners:
        listener.close()
    await runner.shutdown()
    await runner.server.shutdown(2.0)
    await runner.cleanup()


async def run(listen: str | None = None, config_path: str | None = None, demo: bool = False,
              interval: float = 2.0, limits: vguard.Limits | None = None, allowed_hosts=None) -> int:
    config = ConfigCache(config_path)
    reader = DemoReader(interval, config) if demo else BusReader(interval, config)
    limits = limits or vguard.Limits(max_connections=vguard.default_max_connections())
    stats = vguard.Stats(limits)
    webroot = None
    if not demo:
        await asyncio.to_thread(config.load)
        webroot = getattr(config.config, "webroot", None)
    runner = web.AppRunner(make_app(reader, webroot=webroot, stats=stats, allowed_hosts=allowed_hosts),
                           access_log=None, handle_signals=False)
    await runner.setup()
    listeners, activated = _serve(vguard.Guard(runner.server, limits, stats), listen, config)
    where = ", ".join(listener.name for listener in listeners)
    log.info("at most %d connections; request head within %.0f s, idle kept-alive %.0f s",
             limits.max_connections, limits.header_timeout, limits.idle_timeout)

    async def reload():
        sd.notify_reloading()
        await reader.reload_config()
        if activated:
            _check_webserver([listener.sock for listener in listeners], config)
        sd.notify_ready(f"serving on {where}; configuration {config.path}"
                        + (f" NOT loaded: {config.error}" if config.error else ""))

    signals = lifecycle.StopSignals(on_reload=reload)
    if demo:
        await reader.start()
    else:
        connector = asyncio.create_task(_connect_bus_forever(reader, signals.stopped))
    watchdog = asyncio.create_task(sd.watchdog())
    limits_watch = asyncio.create_task(vlimits.watch("vc5-webd"))     # MemoryMax=, LimitNOFILE=
    sd.notify_ready(f"serving on {where}")
    log.info("serving on %s%s", where, " (demo data)" if demo else "")
    await signals.wait()
    sd.notify_stopping()
    watchdog.cancel()
    limits_watch.cancel()
    if not demo:
        connector.cancel()
    await reader.close()
    await _stop(listeners, runner)
    return 0
