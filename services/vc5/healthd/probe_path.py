"""Where a probe for (VIP, backend) connects to.

vc5 probes the VIP *on* the backend (IP dst = VIP at the backend's MAC, from
the balancer's address on that subnet) through a NAT path in XDP
(vc5-behaviour §1.5, §3.4): the prober connects to a per-(VIP, backend) probe
address that xdp-loader rewrites. That side belongs to xdp-loader, which
publishes the addresses as org.vc5.XdpLoader1 property ProbeAddresses
a(sss): (vip, backend, probe address).

Modes:
  * "loader": follow ProbeAddresses; a pair without an address fails its round
    with a diagnostic saying so (never silently probes something else);
  * "direct": probe the backend's own address. This does NOT prove that the
    backend accepts traffic for the VIP (the usual DSR mistake: VIP missing
    from the backend's loopback); it is logged at start and shown in the
    ProbePath property and in every round's probe target.
  * "auto" (default): "loader" if xdp-loader publishes ProbeAddresses, else "direct".
"""

import logging

from vc5.common import names

log = logging.getLogger("vc5.healthd.probe_path")

MODES = ("auto", "direct", "loader")
PROPERTY = "ProbeAddresses"


class ProbePath:
    """Resolver (vip, backend) -> address to connect to, or None if there is none yet."""

    def __init__(self, mode: str = "direct", addresses=()):
        if mode not in ("direct", "loader"):
            raise ValueError(f"probe path mode {mode!r}: expected direct or loader")
        self.mode = mode
        self._map = {}
        self.update(addresses)

    def update(self, addresses) -> None:
        """Replace the (vip, backend) -> probe address table (loader mode)."""
        self._map = {(str(v), str(b)): str(p) for v, b, p in addresses}

    def target(self, vip, backend):
        if self.mode == "direct":
            return str(backend)
        return self._map.get((str(vip), str(backend)))

    def describe(self) -> str:
        return self.mode


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


async def open_probe_path(bus, mode: str) -> ProbePath:
    """Build the resolver for `mode`; in loader mode keep it updated from PropertiesChanged."""
    if mode not in MODES:
        raise ValueError(f"probe path mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "direct" or bus is None:
        if mode == "loader":
            log.warning("probe path 'loader' asked for but no bus: probing backends directly")
        return _direct()
    try:
        intro = await bus.introspect(names.XDP_LOADER_BUS, names.XDP_LOADER_PATH)
        obj = bus.get_proxy_object(names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, intro)
        iface = obj.get_interface(names.XDP_LOADER_IFACE)
        props = obj.get_interface("org.freedesktop.DBus.Properties")
        value = await props.call_get(names.XDP_LOADER_IFACE, PROPERTY)
    except Exception as e:   # absent loader or no such property
        if mode == "loader":
            log.warning("probe path 'loader': %s has no %s yet (%s); every round fails until it does",
                        names.XDP_LOADER_BUS, PROPERTY, e)
            return ProbePath("loader")
        return _direct()
    path = ProbePath("loader", value.value)

    def changed(interface, changed_props, invalidated):
        if interface == names.XDP_LOADER_IFACE and PROPERTY in changed_props:
            path.update(changed_props[PROPERTY].value)

    props.on_properties_changed(changed)
    del iface
    log.info("probe path: loader (%d probe addresses from %s)", len(path._map), names.XDP_LOADER_BUS)
    return path


def _direct() -> ProbePath:
    log.warning("probe path: direct - probes go to each backend's own address, not to the VIP on it; "
                "a backend without the VIP on its loopback still passes")
    return ProbePath("direct")
