"""The loader's side of the health-check probe path (docs/probe-path.md): when to set up,
re-assert, update and tear down what nat.py builds, and the ProbeAddresses it publishes.

    probe = ProbePath(dp, interfaces, on_change)
    probe.setup()                     # the veth pair and xdp_nat on it; never raises
    probe.ensure()                    # every rescan: re-create it if its veth pair disappeared
    probe.update(planned, view)       # after each reconciliation: one probe address per
                                      # forwardable (VIP, backend)
    probe.addresses                   # tuple[wire.ProbeAddress], as published
    probe.error                       # why the probe path does not work ("" when it does)
    probe.teardown()                  # with the detach only: a restart keeps it

`on_change()` is called when `addresses` changed (the loader marks
ProbeAddresses for publication).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from vc5.common import log as vlog
from vc5.common import wire

from . import nat

log = logging.getLogger("vc5.xdp_loader")


class ProbePath:
    def __init__(self, dp, interfaces: Callable[[], tuple], on_change: Callable[[], None] = lambda: None):
        self.dp = dp
        self._interfaces = interfaces      # the configured interfaces (their rp_filter is checked)
        self._on_change = on_change
        self.nat: nat.ProbeNat | None = None
        self.plumbing: nat.Plumbing | None = None
        self.error = ""
        self.addresses: tuple = ()
        self._raw: list = []               # nat.ProbeNat.addresses() as last published

    def setup(self) -> None:
        """Create (or re-assert after a restart) the veth pair and xdp_nat on it; never raises."""
        try:
            if self.nat is None:
                self.nat = nat.ProbeNat(self.dp)
            if self.plumbing is None:
                self.plumbing = nat.Plumbing()
            r = self.plumbing.setup(self.dp.nat_fd)
        except Exception as e:          # netlink, ioctl, attach: the balancer keeps forwarding
            if str(e) != self.error:
                vlog.event(log, logging.ERROR, f"health-check probe path not available: {e}; healthd "
                           "cannot probe the VIPs on the backends")
            self.error = str(e) or type(e).__name__
        else:
            if self.error or r.previous_prog_id != r.prog_id:
                vlog.event(log, logging.INFO, f"health-check probe path ready: {nat.HOST_IFNAME} <-> "
                           f"{nat.PEER_IFNAME}, routes {nat.NET4} and {nat.NET6}, program {r.prog_id} "
                           f"({r.mode} mode)")
            self.error = ""
            for name in self._interfaces():
                if nat.strict_rp_filter(name):
                    log.warning("net.ipv4.conf.%s.rp_filter is strict (1): IPv4 probe answers arriving "
                                "on %s are dropped by the kernel; use loose (2) or off (0)", name, name)
        self._publish()

    def ensure(self) -> None:
        """Re-create the probe path if its veth pair disappeared."""
        if self.plumbing is None or self.error or not self.plumbing.exists():
            self.setup()

    def update(self, planned, view) -> None:
        """Probe addresses for the planned services (planner.PlannedService) over `view`."""
        if self.nat is None:
            return
        targets, _reasons = nat.targets_from_plan(planned, view)
        try:
            self.nat.update(targets)
        except (ValueError, OSError) as e:
            vlog.event(log, logging.ERROR, f"probe addresses not programmed: {e}")
        self._publish()

    def _publish(self) -> None:
        raw = self.nat.addresses() if self.nat is not None and not self.error else []
        if raw != self._raw:
            self._raw = raw
            self.addresses = tuple(wire.ProbeAddress(str(v), str(b), str(a)) for v, b, a in raw)
            self._on_change()

    def teardown(self) -> None:
        if self.nat is not None:
            try:
                self.nat.clear()
            except OSError as e:
                log.warning("clearing the probe addresses: %s", e)
        if nat.teardown():
            log.info("removed the health-check probe path (%s)", nat.HOST_IFNAME)
