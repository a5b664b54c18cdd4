"""vc5-bgpd life cycle: configuration, the bus name, signals, systemd notifications.

Start (docs/bgp.md): read the configuration (bgp section); own org.vc5.Bgp1 with
the reply checked, before any BGP session or listening socket exists (a second
vc5-bgpd exits 1 and never talks BGP beside the first); follow org.vc5.Health1's
VIPs and, with --dataplane required, org.vc5.XdpLoader1 (fail-safe advertising:
feed.py, gate.py); open sessions; accept passive sessions on the sockets from
vc5-bgpd.socket (or --listen); READY=1. Maintenance (maintenance.py) is read from
the state directory before any session opens.
SIGHUP (systemctl reload) = Manager.Reload(): validate first; a bad file is
refused with every problem named and the old configuration keeps running.
SIGTERM/SIGINT: graceful shutdown (speaker.shutdown), then exit 0. SIGUSR1 logs
every task's stack (vc5.common.lifecycle.StopSignals).
"""

import asyncio
import logging
import os

from vc5 import config
from vc5.common import bus as vbus
from vc5.common import lifecycle, limits, names, sd, wire
from vc5.common import log as vlog
from vc5.common import messages as msgids

from . import api, gate
from .feed import Feed
from .maintenance import FILENAME as MAINTENANCE_FILE
from .speaker import Speaker, bind_listener

log = logging.getLogger("vc5.bgpd")


async def run(args) -> int:
    """The whole life of vc5-bgpd (lifecycle.main runs it); the exit code."""
    return await Daemon(args).run()


def empty_bgp(cfg):
    return config.Bgp(router_id=cfg.address)


class Daemon:
    """Holds the Speaker, the Publisher of org.vc5.Bgp1 and the bus connection."""

    def __init__(self, args):
        self.args = args
        self.generation = 0
        self.last_reload_error = ""
        self.health_connected = False
        self.speaker = None
        self.feed = None
        self.loader_watch = None
        self.publisher = None
        self.bus = None
        self._reload_lock = asyncio.Lock()

    def _learn(self, cfg, bgp):
        if self.args.learn is not None:
            return self.args.learn
        return max(bgp.learn or cfg.learn, 1)      # vc5 treats 0 as 1 s

    def _getters(self):
        """The current value of each org.vc5.Bgp1 property, typed (wire.BGP encodes them)."""
        sp = self.speaker
        return {"Peers": sp.peer_status, "Advertised": sp.advertised,
                "AsNumber": lambda: sp.local.asn, "RouterId": lambda: str(sp.local.router_id),
                "ShuttingDown": lambda: sp.shutting_down, "HealthConnected": lambda: self.health_connected,
                "Generation": lambda: self.generation, "LastReloadError": lambda: self.last_reload_error,
                "DataPlane": self.feed.gate_state, "Maintenance": lambda: self.feed.maintenance.state,
                "Bfd": sp.bfd_status}

    async def run(self) -> int:
        bgp = self._create_speaker()
        if bgp is None:
            return 1
        signals = lifecycle.StopSignals(on_reload=self.reload)
        if not self.args.no_bus:
            try:
                await self._open_bus()
            except vbus.NameTaken as e:
                log.error("not starting: %s A second vc5-bgpd would open BGP sessions beside the one that "
                          "owns %s.", e, names.BGP_BUS)
                return 1
        sockets = self._listening_sockets(bgp)
        self.speaker.start()
        await self.speaker.serve(sockets)
        watchdog = asyncio.ensure_future(sd.watchdog())
        limits_watch = asyncio.ensure_future(limits.watch("vc5-bgpd"))   # MemoryMax=, LimitNOFILE=
        sd.notify_ready(self._status())
        log.info("vc5-bgpd ready: AS %s, router ID %s, %d peer(s), listening on %d socket(s)",
                 self.speaker.local.asn, self.speaker.local.router_id, len(bgp.peers), len(sockets))
        await signals.wait()
        await self._stop()
        watchdog.cancel()
        limits_watch.cancel()
        if self.bus is not None:
            self.bus.disconnect()
        return 0

    def _create_speaker(self):
        """The bgp section, self.speaker made from it (no session started yet); None after saying why not."""
        try:
            cfg = config.load(self.args.config)
        except config.ConfigError as e:
            log.error("configuration %s refused:\n%s", self.args.config, e)
            return None
        except OSError as e:
            log.error("cannot read configuration %s: %s", self.args.config, e)
            return None
        bgp = cfg.bgp or empty_bgp(cfg)
        try:
            self.speaker = Speaker(bgp, hold_down=self.args.hold_down, retry_min=self.args.retry_min,
                                   retry_max=self.args.retry_max, learn=self._learn(cfg, bgp))
        except ValueError as e:
            log.error("%s: %s", self.args.config, e)
            return None
        self.generation = 1
        params = gate.Params(self.args.dataplane, self.args.loader_grace, self.args.loader_starting_max)
        self.feed = Feed(self.speaker, params, os.path.join(self.args.state_dir, MAINTENANCE_FILE),
                         mark=lambda *names_: self.publisher.mark(*names_))
        self.publisher = vbus.Publisher(names.BGP_PATH, wire.BGP, self._getters())
        self.speaker.listeners.append(self._on_speaker)
        return bgp

    async def _open_bus(self):
        """Own org.vc5.Bgp1 (vbus.NameTaken if another process does), then follow org.vc5.Health1."""
        self.bus = await lifecycle.open_bus(names.BGP_BUS, names.BGP_PATH, api.BgpInterface(self.publisher),
                                            api.BgpManagerInterface(self), queue=False)
        self.publisher.attach(self.bus)
        if self.args.dataplane == gate.REQUIRED:
            # docs/bgp.md, "Fail-safe advertising": the loader is waited for, never guessed
            self.loader_watch = await vbus.watch_properties(
                self.bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, names.XDP_LOADER_IFACE,
                self.feed.on_loader, on_vanished=self.feed.on_loader_vanished, schema=wire.XDP_LOADER)
            self.feed.loader_owner = lambda: self.loader_watch.owner
        await vbus.watch_properties(self.bus, names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_IFACE,
                                    self._on_health, on_vanished=self._on_health_vanished, schema=wire.HEALTH)

    def _listening_sockets(self, bgp):
        sockets = sd.listen_sockets()
        for host, port in self.args.listen:
            sockets.append(bind_listener(host, port))
        if bgp.listen and not sockets:
            sockets.append(bind_listener("::", 179))
        if not sockets and any(p.passive for p in bgp.peers):
            log.warning("passive peers are configured but there is no listening socket "
                        "(vc5-bgpd.socket, --listen or bgp.listen): they can never connect")
        return sockets

    async def _stop(self):
        self.feed.close()
        sd.notify_stopping()
        sd.notify_status("withdrawing routes")
        self.publisher.mark("ShuttingDown")     # the speaker sets it before its first await
        if self.speaker.bgp.graceful_restart:
            # RFC 4724: peers keep our routes while we restart; a stop looks the same to them
            # (they drop the routes when the restart time ends without us).
            log.info("stopping: graceful restart (routes kept by peers as stale)")
            await self.speaker.shutdown(graceful_restart=True)
        else:
            log.info("stopping: graceful shutdown")
            await self.speaker.shutdown(self.args.shutdown_reason)

    def _status(self):
        up = sum(1 for s in self.speaker.sessions.values() if s.state.value == "Established")
        return (f"generation {self.generation}; {up}/{len(self.speaker.sessions)} sessions established; "
                f"{len(self.speaker.rib)} prefixes")

    # ------------------------------------------------------------ healthd

    def _on_health(self, props):
        """org.vc5.Health1's properties, typed by wire.HEALTH: VIPs is a tuple of wire.VipState."""
        if not self.health_connected:
            self.health_connected = True
            self.publisher.mark("HealthConnected")
        self.feed.on_health(props)

    def _on_health_vanished(self):
        # Forwarding goes on while healthd restarts: keep advertising what we had (never guess).
        log.warning("org.vc5.Health1 left the bus; keeping the current RIB until it returns")
        self.health_connected = False
        self.publisher.mark("HealthConnected")

    # ------------------------------------------------------------ maintenance

    async def set_maintenance(self, on: bool):
        """Manager.SetMaintenance: saved first (OSError if it cannot be), then applied."""
        await self.feed.set_maintenance(on)

    # ------------------------------------------------------------ reload

    async def reload(self):
        """(ok, text). Validate first; nothing is applied unless the whole bgp section is valid."""
        if self.speaker.shutting_down:
            return False, "vc5-bgpd is shutting down"
        async with self._reload_lock:
            sd.notify_reloading()
            try:
                # Parsed in a worker thread: a large file must not starve keepalives and hold
                # timers (RFC 4271 §4.4, §10) on the event loop; applied on the loop, in one step.
                loaded = await asyncio.to_thread(self._read_config)
                return self._apply_config(loaded)
            finally:
                sd.notify_ready(self._status())

    def _read_config(self):
        """(cfg, bgp section) or the exception that refuses the file (worker thread: no state touched)."""
        try:
            cfg = config.load(self.args.config)
            bgp = cfg.bgp or empty_bgp(cfg)
            if bgp.router_id is None and bgp.peers:
                raise ValueError(f"{self.args.config}: bgp: no router ID (set bgp.router_id or address)")
        except (config.ConfigError, OSError, ValueError) as e:
            return e
        return cfg, bgp

    def _apply_config(self, loaded):
        try:
            if isinstance(loaded, Exception):
                raise loaded
            cfg, bgp = loaded
        except (config.ConfigError, OSError, ValueError) as e:
            self.last_reload_error = str(e)
            self.publisher.mark("LastReloadError")
            vlog.event(log, logging.ERROR, f"configuration {self.args.config} refused; keeping "
                       f"generation {self.generation}:\n{e}", message_id=msgids.CONFIG_REJECTED)
            return False, str(e)
        self.speaker.reconfigure(bgp, learn=self._learn(cfg, bgp))
        self.generation += 1
        self.last_reload_error = ""
        self.publisher.mark("Generation", "LastReloadError", "AsNumber", "RouterId", "Peers")
        vlog.event(log, logging.INFO, f"configuration {self.args.config} applied "
                   f"(generation {self.generation})", message_id=msgids.CONFIG_LOADED)
        return True, ""

    # ------------------------------------------------------------ speaker events

    def _on_speaker(self, kind, *args):
        if kind == "peer_state":
            change = args[0]
            self._log_peer_state(change)
            self.publisher.signal(change)
            sd.notify_status(self._status())
        elif kind == "peers":
            self.publisher.mark("Peers")
        elif kind == "rib":
            self.publisher.mark("Advertised", "ShuttingDown", "Peers")
        elif kind == "bfd":
            self.publisher.mark("Bfd")

    @staticmethod
    def _log_peer_state(change: wire.PeerStateChange):
        address = change.address
        if change.new_state == "Established":
            vlog.event(log, vlog.NOTICE, f"BGP session with {address} established", peer=address,
                       message_id=msgids.BGP_SESSION_ESTABLISHED)
        elif change.old_state == "Established":
            vlog.event(log, logging.WARNING, f"BGP session with {address} down: {change.reason}",
                       peer=address, message_id=msgids.BGP_SESSION_DOWN)
