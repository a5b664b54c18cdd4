"""vc5-bgpd process glue: configuration, D-Bus, signals, systemd notifications.

Start: read the configuration (bgp section), export org.vc5.Bgp1, follow
org.vc5.Health1's VIPs property, open sessions, accept passive sessions on the
socket from vc5-bgpd.socket (or --listen), then READY=1.
SIGHUP (systemctl reload) = Manager.Reload(): validate first; a bad file is
refused with every problem named and the old configuration keeps running.
SIGTERM/SIGINT: graceful shutdown (speaker.shutdown), then exit 0.
"""

import asyncio
import ipaddress
import logging
import signal

from vc5 import config
from vc5.common import bus as vbus
from vc5.common import log as vlog
from vc5.common import messages as msgids
from vc5.common import names, sd, wire

from . import api
from .speaker import Speaker, bind_listener

log = logging.getLogger("vc5.bgpd")


def empty_bgp(cfg):
    return config.Bgp(router_id=cfg.address)


class Daemon:
    def __init__(self, args):
        self.args = args
        self.generation = 0
        self.last_reload_error = ""
        self.health_connected = False
        self.speaker = None
        self.bus = None
        self.iface = None
        self._dirty = set()
        self._flush_scheduled = False
        self._stop = None
        self._reload_lock = None

    def _learn(self, cfg, bgp):
        if self.args.learn is not None:
            return self.args.learn
        return max(bgp.learn or cfg.learn, 1)      # vc5 treats 0 as 1 s

    async def run(self) -> int:
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        try:
            cfg = config.load(self.args.config)
        except config.ConfigError as e:
            log.error("configuration %s refused:\n%s", self.args.config, e)
            return 1
        except OSError as e:
            log.error("cannot read configuration %s: %s", self.args.config, e)
            return 1
        bgp = cfg.bgp or empty_bgp(cfg)
        try:
            self.speaker = Speaker(bgp, hold_down=self.args.hold_down, retry_min=self.args.retry_min,
                                   retry_max=self.args.retry_max, learn=self._learn(cfg, bgp))
        except ValueError as e:
            log.error("%s: %s", self.args.config, e)
            return 1
        self.generation = 1
        self.speaker.listeners.append(self._on_speaker)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

        sockets = sd.listen_sockets()
        for spec in self.args.listen:
            host, _, port = spec.rpartition(":")
            sockets.append(bind_listener(host.strip("[]"), int(port)))
        if bgp.listen and not sockets:
            sockets.append(bind_listener("::", 179))

        if not self.args.no_bus:
            self.bus = await vbus.connect_system_bus()
            self.iface = api.BgpInterface(self)
            self.bus.export(names.BGP_PATH, self.iface)
            self.bus.export(names.BGP_PATH, api.BgpManagerInterface(self))
            await self.bus.request_name(names.BGP_BUS)
            await vbus.watch_properties(self.bus, names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_IFACE,
                                        self._on_health, on_vanished=self._on_health_vanished)

        if not sockets and any(p.passive for p in bgp.peers):
            log.warning("passive peers are configured but there is no listening socket "
                        "(vc5-bgpd.socket, --listen or bgp.listen): they can never connect")
        self.speaker.start()
        await self.speaker.serve(sockets)
        watchdog = asyncio.ensure_future(sd.watchdog())
        sd.notify_ready(self._status())
        log.info("vc5-bgpd ready: AS %s, router ID %s, %d peer(s), listening on %d socket(s)",
                 self.speaker.local.asn, self.speaker.local.router_id, len(bgp.peers), len(sockets))
        await self._stop.wait()
        sd.notify_stopping()
        sd.notify_status("withdrawing routes")
        if self.speaker.bgp.graceful_restart:
            # RFC 4724: peers keep our routes while we restart; a stop looks the same to them
            # (they drop the routes when the restart time ends without us).
            log.info("stopping: graceful restart (routes kept by peers as stale)")
            await self.speaker.shutdown(graceful_restart=True)
        else:
            log.info("stopping: graceful shutdown")
            await self.speaker.shutdown(self.args.shutdown_reason)
        watchdog.cancel()
        if self.bus is not None:
            self.bus.disconnect()
        return 0

    def _status(self):
        up = sum(1 for s in self.speaker.sessions.values() if s.state.value == "Established")
        return (f"generation {self.generation}; {up}/{len(self.speaker.sessions)} sessions established; "
                f"{len(self.speaker.rib)} prefixes")

    # ------------------------------------------------------------ healthd

    def _on_health(self, props):
        vips = wire.vips_from_dbus(props.get("VIPs", []))
        if not self.health_connected:
            self.health_connected = True
            self._mark("HealthConnected")
        self.speaker.set_vips(vips)

    def _on_health_vanished(self):
        # Forwarding goes on while healthd restarts: keep advertising what we had (never guess).
        log.warning("org.vc5.Health1 left the bus; keeping the current RIB until it returns")
        self.health_connected = False
        self._mark("HealthConnected")

    # ------------------------------------------------------------ reload

    async def reload(self):
        """(ok, text). Validate first; nothing is applied unless the whole bgp section is valid."""
        if self.speaker.shutting_down:
            return False, "vc5-bgpd is shutting down"
        async with self._reload_lock:
            sd.notify_reloading()
            try:
                try:
                    cfg = config.load(self.args.config)
                    bgp = cfg.bgp or empty_bgp(cfg)
                    if bgp.router_id is None and bgp.peers:
                        raise ValueError(f"{self.args.config}: bgp: no router ID "
                                         "(set bgp.router_id or address)")
                except (config.ConfigError, OSError, ValueError) as e:
                    self.last_reload_error = str(e)
                    self._mark("LastReloadError")
                    vlog.event(log, logging.ERROR, f"configuration {self.args.config} refused; keeping "
                               f"generation {self.generation}:\n{e}", message_id=msgids.CONFIG_REJECTED)
                    return False, str(e)
                self.speaker.reconfigure(bgp, learn=self._learn(cfg, bgp))
                self.generation += 1
                self.last_reload_error = ""
                self._mark("Generation", "LastReloadError", "AsNumber", "RouterId", "Peers")
                vlog.event(log, logging.INFO, f"configuration {self.args.config} applied "
                           f"(generation {self.generation})", message_id=msgids.CONFIG_LOADED)
                return True, ""
            finally:
                sd.notify_ready(self._status())

    # ------------------------------------------------------------ D-Bus signals

    def _on_speaker(self, kind, *args):
        if kind == "peer_state":
            address, old, new, reason = args
            if new == "Established":
                vlog.event(log, vlog.NOTICE, f"BGP session with {address} established", peer=address,
                           message_id=msgids.BGP_SESSION_ESTABLISHED)
            elif old == "Established":
                vlog.event(log, logging.WARNING, f"BGP session with {address} down: {reason}", peer=address,
                           message_id=msgids.BGP_SESSION_DOWN)
            if self.iface is not None:
                self.iface.PeerStateChanged(address, old, new, reason)
            sd.notify_status(self._status())
        elif kind == "peers":
            self._mark("Peers")
        elif kind == "rib":
            self._mark("Advertised", "ShuttingDown", "Peers")

    def _mark(self, *props):
        if self.iface is None:
            return
        self._dirty.update(props)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self):
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        if dirty and self.iface is not None and self.bus is not None and self.bus.connected:
            self.iface.emit_properties_changed(self.iface.values(sorted(dirty)))


def parse_listen(spec):
    host, _, port = spec.rpartition(":")
    ipaddress.ip_address(host.strip("[]"))
    return spec
