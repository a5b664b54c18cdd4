"""Where a probe for (VIP, backend) connects to.

vc5 probes the VIP *on* the backend (IP dst = VIP at the backend's MAC, from
the balancer's address on that subnet) through a NAT path in XDP
(docs/probe-path.md; docs/health-checks.md "Probe path"): the prober connects
to a per-(VIP, backend) probe address that xdp-loader rewrites. That side
belongs to xdp-loader, which publishes the addresses as org.vc5.XdpLoader1
property ProbeAddresses: wire.ProbeAddress (vip, backend, address) structs.

Modes:
  * "loader": follow ProbeAddresses; a pair without an address fails its round
    with a diagnostic saying so (never silently probes something else);
  * "direct": probe the backend's own address. This does NOT prove that the
    backend accepts traffic for the VIP (the usual DSR mistake: VIP missing
    from the backend's loopback); it is logged at start and shown in the
    ProbePath property and in every round's probe target.
  * "auto" (default): "loader" if xdp-loader publishes ProbeAddresses, else "direct";
    in loader mode a (VIP, backend) without a probe address is probed directly.
"""

import asyncio
import logging

from vc5.common import names, wire
from vc5.common.bus import watch_properties

log = logging.getLogger("vc5.healthd.probe_path")

MODES = ("auto", "direct", "loader")
PROPERTY = "ProbeAddresses"


class ProbePath:
    """Resolver (vip, backend) -> address to connect to, or None if there is none yet.

    `requested` is what the operator asked for (auto | direct | loader); `mode`
    is what is in force (direct | loader). In auto mode it follows xdp-loader:
    loader while the loader publishes ProbeAddresses, direct otherwise.
    `on_change()` is called whenever `mode` changes.
    """

    def __init__(self, mode: str = "direct", addresses=(), requested=None):
        if mode not in ("direct", "loader"):
            raise ValueError(f"probe path mode {mode!r}: expected direct or loader")
        self.mode = mode
        self.requested = requested or mode
        self.on_change = None
        self._map = {}
        self.update(addresses)

    def update(self, addresses) -> None:
        """Replace the (vip, backend) -> probe address table (loader mode) from wire.ProbeAddress values."""
        self._map = {(a.vip, a.backend): a.address for a in addresses}

    def target(self, vip, backend):
        if self.mode == "direct":
            return str(backend)
        t = self._map.get((str(vip), str(backend)))
        if t is None and self.requested == "auto":
            # auto: a pair the loader has no address for (yet, or its NAT path failed) is probed
            # directly rather than failed - failing it would withdraw healthy VIPs. ProbeLog
            # shows the target of every round.
            return str(backend)
        return t

    def describe(self) -> str:
        return self.mode

    def loader_properties(self, props) -> None:
        """xdp-loader's org.vc5.XdpLoader1 properties, typed (watch_properties(schema=wire.XDP_LOADER))."""
        if PROPERTY in props:
            self.update(props[PROPERTY])
            self._set_mode("loader")
        elif self.requested == "auto":
            self._set_mode("direct")

    def _set_mode(self, mode):
        if mode == self.mode:
            return
        self.mode = mode
        if mode == "loader":
            log.info("probe path: loader (%d probe addresses from %s)", len(self._map), names.XDP_LOADER_BUS)
        else:
            _warn_direct()
        if self.on_change is not None:
            self.on_change()


def missing_target_diagnostic(vip, backend) -> str:
    return f"probe: xdp-loader publishes no probe address for VIP {vip} on backend {backend}"


def dsr_hint(on_vip_passed: bool, on_own_address_passed: bool, vip, backend):
    """The most common DSR mistake, named: the backend answers on its own address but not on the VIP.

    Given the verdict of the check sent to the VIP on the backend (NAT path)
    and of the same check sent to the backend's own address, return the
    explanation to append to the diagnostic, or None when it does not apply.
    """
    if on_vip_passed or not on_own_address_passed:
        return None
    return (f"backend {backend} answers on its own address but not on VIP {vip}: configure the VIP "
            f"on the backend's loopback (e.g. `ip addr add {vip}/{128 if ':' in str(vip) else 32} dev lo`) "
            "and stop it answering ARP/ND for it (net.ipv4.conf.all.arp_ignore=1, arp_announce=2), "
            "and make the service listen on the VIP (or on any address)")


def tunnel_hint(service, backend):
    """A tunnelled service's probe travels inside the tunnel (docs/probe-path.md, "Tunnels"):
    name it when the probe fails, e.g. "tunnel gue:6080 not terminated on 10.2.0.5?"."""
    kind = getattr(service, "tunnel_type", "none") or "none"
    if kind == "none":
        return None
    port = f":{service.tunnel_port}" if kind in ("fou", "gue") else ""
    return f"tunnel {kind}{port} not terminated on {backend}?"


async def open_probe_path(bus, mode: str, first_wait: float = 2.0) -> ProbePath:
    """The resolver for `mode`, kept up to date from xdp-loader (auto, loader) across its restarts.

    If xdp-loader is on the bus at start, its properties are awaited (up to
    `first_wait` s) so that the first rounds already use the right path. While
    the loader is away the last probe addresses are kept (its pinned maps, and
    so the NAT path, outlive it).
    """
    if mode not in MODES:
        raise ValueError(f"probe path mode {mode!r}: expected one of {', '.join(MODES)}")
    path = ProbePath("loader" if mode == "loader" else "direct", requested=mode)
    if mode == "direct" or bus is None:
        _warn_direct()
        return path
    first = asyncio.Event()

    def changed(props):
        path.loader_properties(props)
        first.set()

    def vanished():
        log.warning("%s left the bus; keeping its last %d probe addresses", names.XDP_LOADER_BUS,
                    len(path._map))

    watch = await watch_properties(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, names.XDP_LOADER_IFACE,
                                   changed, on_vanished=vanished, schema=wire.XDP_LOADER)
    path.watch = watch
    if watch.owner is not None:
        try:
            await asyncio.wait_for(first.wait(), first_wait)
        except asyncio.TimeoutError:
            pass
    if path.mode == "direct":
        _warn_direct()
    elif PROPERTY not in watch.properties:
        log.warning("probe path 'loader': %s publishes no %s yet; rounds fail until it does",
                    names.XDP_LOADER_BUS, PROPERTY)
    return path


def _warn_direct():
    log.warning("probe path: direct - probes go to each backend's own address, not to the VIP on it; "
                "a backend without the VIP on its loopback still passes")
