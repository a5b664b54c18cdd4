"""What the speaker is offered: healthd's VIPs through the data-plane gate and maintenance.

    healthd VIPs (+ Services) --+
    org.vc5.XdpLoader1 -------- gate.evaluate --> allowed VIPs --(maintenance on: none)--> Speaker.set_vips
    clock (grace deadlines) ----+

A VIP that is held back is given to the speaker as down, so it is withdrawn at
once (rib.compute) and comes back as soon as it is allowed again (healthd's
`since` still counts for the hold-down). While maintenance is draining, the
speaker's routes carry GRACEFUL_SHUTDOWN (RFC 8326), as at stop (speaker.py).
Published on org.vc5.Bgp1 as DataPlane (wire.DataPlaneGate) and Maintenance.
"""

from __future__ import annotations

import asyncio
import logging
import time

from vc5.common import log as vlog
from vc5.common import wire

from . import gate
from .maintenance import Maintenance

log = logging.getLogger("vc5.bgpd")


class Feed:
    def __init__(self, speaker, params: gate.Params, maintenance_path: str, mark=lambda *names: None,
                 clock=time.monotonic, wall=time.time):
        self.speaker = speaker
        self.params = params
        self.mark = mark                    # Publisher.mark of org.vc5.Bgp1
        self.clock, self.wall = clock, wall
        self.vips = None                    # healthd's VIPs; None until read once
        self.services = ()                  # healthd's Services (which services make up a VIP)
        self.memory = gate.Memory()
        self.verdict = gate.evaluate(self.memory, (), (), clock(), params)
        self.loader_owner = lambda: None    # the loader watch's owner (set by the daemon)
        self.maintenance = Maintenance(maintenance_path, self._maintenance_changed)
        self._until = (None, 0)            # (monotonic deadline, its µs since the epoch)
        self._published = self.gate_state()
        self._wake = None
        if self.maintenance.withdrawn:
            vlog.event(log, logging.WARNING, f"maintenance is on ({maintenance_path}): nothing will be "
                       "advertised until `vc5ctl maintenance off`")

    # ------------------------------------------------------------ inputs

    def on_health(self, props):
        """org.vc5.Health1's properties (typed by wire.HEALTH)."""
        if "VIPs" in props:
            self.vips = tuple(props["VIPs"])
        self.services = tuple(props.get("Services", self.services))
        self.update()

    def on_loader(self, props):
        """org.vc5.XdpLoader1's properties (typed by wire.XDP_LOADER)."""
        self.memory = gate.loader_seen(self.memory, gate.LoaderView.from_properties(props), self.clock(),
                                       self.params)
        self.update()

    def on_loader_vanished(self):
        was_running = self.memory.view is not None and not self.memory.view.starting
        self.memory = gate.loader_gone(self.memory, self.clock(), self.params)
        if was_running:
            log.warning("org.vc5.XdpLoader1 left the bus; keeping the forwardable VIPs for %.1f s "
                        "(a restarting loader keeps forwarding)", self.params.grace)
        self.update()

    def _on_wake(self):
        self._wake = None
        if self.memory.view is None and self.loader_owner() is not None:
            # a successor owns the name but has not published yet (it is compiling): starting
            self.memory = gate.loader_seen(self.memory, gate.STARTING_UNPUBLISHED, self.clock(), self.params)
        self.update()

    # ------------------------------------------------------------ the one path to the speaker

    def update(self):
        now = self.clock()
        old = self.verdict
        self.verdict = gate.evaluate(self.memory, self.vips or (), self.services, now, self.params)
        self.memory = self.verdict.memory
        self._schedule(self.verdict.wake, now)
        self._log_change(old, self.verdict)
        state = self.gate_state()
        if state != self._published:
            self._published = state
            self.mark("DataPlane")
        if self.vips is None:
            return                          # the speaker waits for healthd (its End-of-RIB, learn delay)
        allowed = frozenset() if self.maintenance.withdrawn else self.verdict.allowed
        self.speaker.set_vips(tuple(v if v.vip in allowed or not v.up else
                                    wire.VipState(v.vip, False, v.since) for v in self.vips))

    def _schedule(self, wake, now):
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if wake is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._wake = loop.call_later(max(0.0, wake - now) + 0.01, self._on_wake)

    @staticmethod
    def _log_change(old: gate.Verdict, new: gate.Verdict):
        if new.state != old.state:
            level = logging.INFO if new.state in (gate.READY, gate.IGNORED) else logging.WARNING
            vlog.event(log, level, f"data plane: {new.state}: {new.detail}")
        before = dict(old.held)
        for vip, why in new.held:
            if before.get(vip) != why:
                vlog.event(log, logging.WARNING, f"VIP {vip} not offered to peers: {why}", vip=vip)
        now_held = dict(new.held)
        for vip in sorted(set(before) - set(now_held)):
            if vip in new.allowed:
                vlog.event(log, logging.INFO, f"VIP {vip} forwardable again", vip=vip)

    # ------------------------------------------------------------ maintenance

    async def set_maintenance(self, on: bool):
        if on:
            await self.maintenance.turn_on(self.speaker.bgp.graceful_shutdown, bool(self.speaker.rib))
        else:
            await self.maintenance.turn_off()

    def _maintenance_changed(self):
        graceful = self.maintenance.graceful
        if self.speaker.graceful != graceful and not self.speaker.shutting_down:
            self.speaker.graceful = graceful
            for session in list(self.speaker.sessions.values()):
                session.rib_changed()       # same prefixes, GRACEFUL_SHUTDOWN added or removed
        self.mark("Maintenance", "Advertised")
        self.update()

    # ------------------------------------------------------------ published

    def gate_state(self) -> wire.DataPlaneGate:
        v = self.verdict
        until = 0
        if v.until:
            if self._until[0] != v.until:
                self._until = (v.until, int((self.wall() + (v.until - self.clock())) * 1e6))
            until = self._until[1]
        held = tuple(wire.HeldVip(vip, why) for vip, why in v.held)
        return wire.DataPlaneGate(v.state, v.detail, until, held)

    def close(self):
        self.maintenance.cancel()
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
