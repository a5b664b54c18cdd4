"""Reads healthd, bgpd and xdp-loader over D-Bus into Snapshots.

Read-only by construction: the only calls made are org.freedesktop.DBus
(name owners, match rules), Properties.GetAll on the read interfaces
(through vc5.common.bus.watch_properties), and org.vc5.XdpLoader1.GetCounters
(a method of the read interface, because counters change with every packet).
No `.Manager` interface is ever called; tests fail if one is.

Properties arrive as PropertiesChanged signals and rebuild the snapshot at
once (a backend going down shows within one event-loop turn); counters are
sampled every `interval` seconds (2 s, as vc5) and rates are derived from
consecutive samples. A daemon not on the bus is None in the snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from dbus_next import DBusError, Message, MessageType

from vc5.common import bus as vbus
from vc5.common import names

from . import events
from .logring import LogRing
from .snapshot import BgpView, HealthView, Snapshot, take, xdp_from_dbus

log = logging.getLogger(__name__)


class ConfigCache:
    """The configuration file as webd last read it (for /config.json and per-service extras)."""

    def __init__(self, path: str | None):
        self.explicit = path
        self.path = path or names.CONFIG_PATH
        self.config = None
        self.error = ""

    def load(self, path: str | None = None) -> None:
        if path and not self.explicit:
            self.path = path
        try:
            from vc5.config import load
            self.config, self.error = load(self.path), ""
        except Exception as e:   # ConfigError, OSError: keep serving, say why on /config.json
            text = str(e)
            self.config, self.error = None, text if self.path in text else f"{self.path}: {text}"
            log.warning("configuration not readable: %s", self.error)


class BusReader:
    """Holds the newest Snapshot (`current`) and the console log (`log`)."""

    def __init__(self, interval: float = 2.0, config: ConfigCache | None = None):
        self.interval = interval
        self.config = config or ConfigCache(None)
        self.started = time.time()
        self.log = LogRing()
        self.health: HealthView | None = None
        self.bgp: BgpView | None = None
        self.xdp_props: dict | None = None
        self.xdp = None
        self.previous_sample = None
        self.current: Snapshot = Snapshot(now=self.started, started=self.started)
        self.generation = None
        self.bus = None
        self._watches = []
        self._sampler: asyncio.Task | None = None
        self.health_signals = False          # healthd's Transition signals are subscribed
        self.changed = asyncio.Event()      # set on every new snapshot (tests wait on it)

    # ------------------------------------------------------------ lifecycle

    async def start(self, bus) -> None:
        self.bus = bus
        self.log.add("Initialised", level=1)
        # healthd's own log lines for every transition (signal Transition(kind, vip, port, protocol,
        # backend, up, text)); subscribed before the property watch so none falls in between.
        bus.add_message_handler(self._on_message)
        rule = (f"type='signal',sender='{names.HEALTH_BUS}',path='{names.HEALTH_PATH}',"
                f"interface='{names.HEALTH_IFACE}',member='Transition'")
        await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                               body=[rule]))
        self.health_signals = True
        self._watches = [
            await vbus.watch_properties(bus, names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_IFACE,
                                        self._on_health, on_vanished=self._health_gone, raw=True),
            await vbus.watch_properties(bus, names.BGP_BUS, names.BGP_PATH, names.BGP_IFACE,
                                        self._on_bgp, on_vanished=self._bgp_gone, raw=True),
            await vbus.watch_properties(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH,
                                        names.XDP_LOADER_IFACE, self._on_xdp, on_vanished=self._xdp_gone),
        ]
        if self.config.config is None and not self.config.error:
            await asyncio.to_thread(self.config.load)
        await self.sample()
        self._sampler = asyncio.create_task(self._sample_forever(), name="webd sampler")

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            try:
                await self._sampler
            except asyncio.CancelledError:
                pass
        for w in self._watches:
            try:
                await w.close()
            except Exception:
                pass

    async def reload_config(self) -> None:
        await asyncio.to_thread(self.config.load)
        self._publish(self.current)

    # ------------------------------------------------------------ property callbacks

    def _on_message(self, msg) -> None:
        if (msg.message_type == MessageType.SIGNAL and msg.interface == names.HEALTH_IFACE
                and msg.member == "Transition" and msg.signature == "ssqssbs"):
            kind, up, text = msg.body[0], msg.body[5], msg.body[6]
            self.log.add(text, level=events.transition_level(kind, up))

    async def _on_health(self, props: dict) -> None:
        try:
            self.health = HealthView.from_dbus(props.get("Services", []), props.get("VIPs", []),
                                               props.get("Generation", 0), props.get("ConfigSource", ""))
        except (TypeError, ValueError) as e:
            log.warning("org.vc5.Health1 published something unreadable: %s", e)
            return
        if self.health.generation != self.generation:
            self.generation = self.health.generation
            await asyncio.to_thread(self.config.load, self.health.config_source or None)
        self._rebuild()

    def _health_gone(self) -> None:
        self.health = None
        self._rebuild()

    async def _on_bgp(self, props: dict) -> None:
        try:
            self.bgp = BgpView.from_dbus(props.get("Peers", []), props.get("Advertised", []))
        except (TypeError, ValueError) as e:
            log.warning("org.vc5.Bgp1 published something unreadable: %s", e)
            return
        self._rebuild()

    def _bgp_gone(self) -> None:
        self.bgp = None
        self._rebuild()

    async def _on_xdp(self, props: dict) -> None:
        first = self.xdp_props is None
        self.xdp_props = props
        if first:
            await self.sample()
        else:
            self._rebuild()

    def _xdp_gone(self) -> None:
        self.xdp_props = None
        self.xdp = None
        self._rebuild()

    # ------------------------------------------------------------ sampling

    async def _counters(self):
        owner = await vbus.get_name_owner(self.bus, names.XDP_LOADER_BUS)
        if owner is None:
            return None
        reply = await self.bus.call(Message(destination=owner, path=names.XDP_LOADER_PATH,
                                            interface=names.XDP_LOADER_IFACE, member="GetCounters"))
        if reply.message_type == MessageType.ERROR:
            raise DBusError._from_message(reply)
        return reply.body[0]

    async def sample(self) -> None:
        """Read the counters (if the loader is there) and publish a snapshot with fresh rates."""
        xdp = None
        if self.xdp_props is not None and self.bus is not None:
            try:
                value = await self._counters()
            except DBusError as e:
                log.warning("GetCounters failed: %s", e.text)
                value = None
            if self.xdp_props is not None:
                xdp = xdp_from_dbus(value, self.xdp_props)
        self.xdp = xdp
        snap, self.previous_sample = take(self.health, self.bgp, xdp, previous=self.previous_sample,
                                          started=self.started, config=self.config.config,
                                          config_error=self.config.error)
        self._publish(snap)

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sampling failed")

    def _rebuild(self) -> None:
        """New daemon state without a new counter sample: keep the last counters and rates."""
        xdp = self.xdp if self.xdp_props is not None else None
        snap = dataclasses.replace(self.current, now=time.time(), health=self.health, bgp=self.bgp, xdp=xdp,
                                   config=self.config.config, config_error=self.config.error)
        self._publish(snap)

    def _publish(self, snap: Snapshot) -> None:
        old, self.current = self.current, snap
        if old is not snap:
            for level, text in events.diff(old, snap, self.health_signals):
                self.log.add(text, level=level)
        self.changed.set()
        self.changed = asyncio.Event()


class DemoReader(BusReader):
    """`--demo`: the fixed sample states of vc5.webd.demo, counters ticking every interval."""

    async def start(self, bus=None) -> None:
        from . import demo
        self._demo = demo
        self._tick = 0
        self._t0 = int((time.time() - 315) * 1e6)      # every state changed 5m15s ago
        self.health, self.bgp = demo.health(t0=self._t0), demo.bgp(t0=self._t0)
        self.log.add("Initialised (demo data: no daemon is being read)", level=1)
        await self.sample()
        self._sampler = asyncio.create_task(self._sample_forever(), name="webd demo sampler")

    async def sample(self) -> None:
        self._tick += 1
        xdp = self._demo.xdp(self._tick, t0=self._t0)
        snap, self.previous_sample = take(self.health, self.bgp, xdp, previous=self.previous_sample,
                                          started=self.started)
        self._publish(snap)

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
