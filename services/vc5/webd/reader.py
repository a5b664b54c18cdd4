"""Reads healthd, bgpd and xdp-loader over D-Bus into Snapshots.

Read-only by construction: the only calls made are org.freedesktop.DBus
(name owners, match rules), Properties.GetAll on the read interfaces
(through vc5.common.bus.watch_properties, decoded with the vc5.common.wire
schemas), and org.vc5.XdpLoader1.GetCounters (a method of the read interface,
because counters change with every packet).
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

from vc5.client.snapshot import BgpView, HealthView, Snapshot, XdpView, take
from vc5.common import bus as vbus
from vc5.common import names, wire

from . import events
from .logring import LogRing

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
        # healthd's own log line for every transition; subscribed before the property watch so
        # none falls in between.
        self._watches = [await vbus.watch_signal(bus, names.HEALTH_BUS, names.HEALTH_PATH, wire.HEALTH,
                                                 "Transition", self._on_transition)]
        self.health_signals = True
        for name, path, schema, changed, gone in (
                (names.HEALTH_BUS, names.HEALTH_PATH, wire.HEALTH, self._on_health, self._health_gone),
                (names.BGP_BUS, names.BGP_PATH, wire.BGP, self._on_bgp, self._bgp_gone),
                (names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, wire.XDP_LOADER, self._on_xdp, self._xdp_gone)):
            self._watches.append(await vbus.watch_properties(bus, name, path, schema.name, changed,
                                                             on_vanished=gone, schema=schema))
        if self.config.config is None and not self.config.error:
            await asyncio.to_thread(self.config.load)
        await self.sample()
        self._sampler = asyncio.create_task(self._sample_forever(), name="webd sampler")

    async def close(self) -> None:
        """Stop sampling, then every watch (the bus may be gone already: errors are ignored)."""
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self._watches), return_exceptions=True)

    async def reload_config(self) -> None:
        await asyncio.to_thread(self.config.load)
        self._publish(self.current)

    # ------------------------------------------------------------ property callbacks

    def _on_transition(self, t: wire.Transition) -> None:
        self.log.add(t.text, level=events.transition_level(t.kind, t.up))

    async def _on_health(self, props: dict) -> None:
        self.health = HealthView.from_properties(props)
        if self.health.generation != self.generation:
            self.generation = self.health.generation
            await asyncio.to_thread(self.config.load, self.health.config_source or None)
        self._rebuild()

    def _health_gone(self) -> None:
        self.health = None
        self._rebuild()

    async def _on_bgp(self, props: dict) -> None:
        self.bgp = BgpView.from_properties(props)
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

    async def _counters(self) -> wire.Counters | None:
        """GetCounters(), or None if the loader is not there (or failed: said in the log)."""
        try:
            return await vbus.call(self.bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH,
                                   names.XDP_LOADER_IFACE, "GetCounters", reply=wire.Counters)
        except vbus.BusError as e:
            if e.type not in names.BUS_ERRORS_ABSENT:
                log.warning("GetCounters failed: %s", e.text)
            return None

    async def sample(self) -> None:
        """Read the counters (if the loader is there) and publish a snapshot with fresh rates."""
        xdp = None
        if self.xdp_props is not None and self.bus is not None:
            counters = await self._counters()
            if self.xdp_props is not None:
                xdp = XdpView.from_properties(counters, self.xdp_props)
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
