"""From "what healthd wants" to "what the data plane should hold": pure functions.

    healthd's Services (wire.ServiceState) + netinfo.NetView
        --plan()-->      PlannedService   (what is published: Services on org.vc5.XdpLoader1)
        --to_specs()-->  specs.ServiceSpec (what DataPlane.set_service writes)

`plan(services, view, ...)` returns one PlannedService per service, each
backend with the MACs and the interface it leaves through, and a reason
whenever it cannot be used. `to_specs` translates one to the data plane's
input; `PlannedService.to_wire()` to the published wire.ProgrammedService.

Invariants:
  * Maglev membership (`in_table`) <=> the backend is usable by healthd's
    verdict (BackendState.usable: up, not disabled, not drained, weight > 0)
    AND forwardable here (its MAC and the interface towards it are known).
  * `valid` (kept in the service so that pinned flows keep reaching it) <=>
    forwardable here. A drained or failing backend stays valid: established
    flows drain; a backend absent from healthd's list is absent from the plan
    and therefore removed.
  * Every backend that is not in the table carries a human-readable reason;
    a backend in the table has reason "".
  * Deterministic: same inputs, same output (no clocks, no I/O).

Next hop (docs/data-plane.md, "Next hop and tunnels"; vc5-behaviour section 1.4,
"Backend location", section 4 item 32):
  * a backend on a local subnet (a vlans/vlans6 prefix, or the implicit
    untagged networks) is reached at its own MAC (neighbour table);
  * any other goes to the gateway named by the host bits of a vlans/vlans6
    prefix of its family (`10: 10.1.10.254/24`; the first VLAN id, one whose
    gateway MAC is known first), at the gateway's MAC; only a tunnel gets it
    there: `tunnel-type: none` to such a backend is refused with a reason.
Tunnels (vc5 v0.3 `tunnel-type`, `tunnel-port`, `tunnel-no-checksum`, from
the service): the outer source is our address on the egress network, which
is of the backend's family by construction (prefixes are matched per
family); the egress interface's MTU goes to the data plane.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from vc5.common import wire

from . import netinfo
from .specs import METHODS, BackendSpec, ServiceSpec

MAX_BACKENDS = 255       # be[1..255]; be[0] is the service header
REDIRECT_SLOTS = 4096    # tx_port keys (layout.REDIRECT_SLOTS)


@dataclass(frozen=True)
class PlannedBackend:
    address: str
    port: int
    weight: int
    mac: str = ""              # destination MAC (the backend's)
    lb_mac: str = ""           # our source MAC on the interface towards it
    lb_ip: str = ""            # our address on that VLAN (probing, health-check NAT)
    vlan: int = 0              # VLAN id (0: untagged)
    ifname: str = ""
    ifindex: int = 0
    redirect: bool = False     # leave through the devmap (several untagged NICs) instead of XDP_TX
    redirect_slot: int = 0     # devmap key when redirecting: per (family, VLAN) egress (redirect_slot_map)
    valid: bool = False        # present in the service: pinned flows may use it
    in_table: bool = False     # in the Maglev table: new flows may pick it
    reason: str = ""           # why not in the table ("" when in it)
    egress_vlan: int = 0       # the VLAN id of the egress (also when untagged)
    gateway: str = ""          # the next hop when routed ("" when on a local subnet)
    method: str = "none"       # the service's tunnel-type
    tunnel_port: int = 0
    no_checksum: bool = False
    mtu: int = 0               # the egress interface's MTU (0: unknown)


@dataclass(frozen=True)
class PlannedService:
    key: str                   # "vip:port:proto"
    vip: str
    port: int
    protocol: str
    sticky: bool
    backends: tuple            # PlannedBackend, in healthd's order
    reason: str = ""           # "" when at least one backend is in the table

    @property
    def table_members(self) -> tuple:
        return tuple(b for b in self.backends if b.in_table)

    def to_wire(self) -> wire.ProgrammedService:
        return wire.ProgrammedService(self.key, self.vip, self.port, self.protocol, self.reason, tuple(
            wire.ProgrammedBackend(b.address, b.mac, b.in_table, b.valid, b.reason, b.ifname, b.vlan)
            for b in self.backends))


@dataclass(frozen=True)
class UnresolvedNeighbour:
    """A backend or gateway address whose MAC we need: probe it from `source` on `ifname`."""
    address: str
    source: str
    ifname: str


def _health_reason(state) -> str:
    if state.disabled:
        return "disabled in the configuration"
    if state.weight <= 0:
        return "weight 0"
    if state.drained:
        return "drained by the operator"
    if not state.up:
        detail = f": {state.diagnostic}" if state.diagnostic else ""
        return "health check failing" + detail
    return ""


def redirect_slot_map(view) -> dict:
    """{(IP version, VLAN id): tx_port slot}: the VLAN id, unless that slot already leads to
    another interface (vlans and vlans6 may give one id to different NICs; one DEVMAP serves
    both families): then the highest free slot (4095 down)."""
    taken, out = {}, {}
    for v in sorted((v for v in view.vlans if v.usable), key=lambda v: (v.prefix.version, v.vlan)):
        slot = v.vlan
        if taken.get(slot, v.ifindex) != v.ifindex:
            slot = next((s for s in range(REDIRECT_SLOTS - 1, 0, -1) if s not in taken), v.vlan)
        taken[slot] = v.ifindex
        out[(v.prefix.version, v.vlan)] = slot
    return out


def _next_hop(address, method, view):
    """(egress VlanInfo, gateway or None, next hop MAC, reason)."""
    vlan = view.vlan_for(address)
    if vlan is not None:
        mac = view.mac_of(address, vlan.ifindex)
        why = "" if mac else f"MAC unknown (no neighbour entry for {address} on {vlan.ifname})"
        return vlan, None, mac, why
    table = "vlans" if address.version == 4 else "vlans6"
    if method == "none":
        return None, None, "", (f"{address} is on no local VLAN prefix: tunnel-type none (L2 DSR) needs a "
                                "directly connected backend; a routed one needs a tunnel-type")
    vlan = view.route_vlan(address.version)
    if vlan is None:
        return None, None, "", (f"{address} is on no local VLAN prefix and no {table} prefix names an "
                                f"IPv{address.version} gateway (host bits, e.g. "
                                f"{'10: 10.1.10.254/24' if address.version == 4 else '10: fd00::fffe/64'}); "
                                f"no IPv{address.version} address of ours to tunnel from")
    if not vlan.gateway_mac:
        return vlan, vlan.gateway, "", (f"gateway {vlan.gateway} MAC unknown (no neighbour entry on "
                                        f"{vlan.ifname})")
    return vlan, vlan.gateway, vlan.gateway_mac, ""


def plan_backend(service, state, view, redirect_ifindexes=(), untagged=False, slots=None) -> PlannedBackend:
    base = dict(address=state.address, port=state.port, weight=state.weight)
    method = (service.tunnel_type or "none").lower()
    if method == "l2":
        method = "none"
    if method not in METHODS:
        return PlannedBackend(**base, reason=f"tunnel-type {service.tunnel_type} unknown")
    try:
        address = ipaddress.ip_address(state.address)
    except ValueError:
        return PlannedBackend(**base, reason=f"not an IP address: {state.address!r}")
    if state.port != service.port:
        why = f"port {state.port} differs from the service port {service.port}; DSR needs equal ports"
        return PlannedBackend(**base, reason=why)
    if method != "none":
        base.update(method=method, tunnel_port=service.tunnel_port, no_checksum=service.tunnel_no_checksum)
    vlan, gateway, mac, why = _next_hop(address, method, view)
    if vlan is None:
        return PlannedBackend(**base, reason=why)
    slot = (slots or {}).get((vlan.prefix.version, vlan.vlan), vlan.vlan)
    where = dict(lb_mac=vlan.lb_mac, lb_ip=str(vlan.lb_ip), vlan=0 if untagged else vlan.vlan,
                 ifname=vlan.ifname, ifindex=vlan.ifindex,
                 redirect=len(redirect_ifindexes) > 1 and vlan.ifindex in redirect_ifindexes,
                 redirect_slot=slot, egress_vlan=vlan.vlan, gateway=str(gateway or ""),
                 mtu=min(view.mtu_of(vlan.ifname), 65535))
    if not why and method in ("fou", "gue") and not service.tunnel_port:
        why = f"tunnel-type {method} needs a tunnel-port"
    if why:
        return PlannedBackend(**base, **where, mac=mac, reason=why)
    health = _health_reason(state)
    return PlannedBackend(**base, **where, mac=mac, valid=True, in_table=not health, reason=health)


def plan_service(service, view, redirect_ifindexes=(), untagged=False, slots=None) -> PlannedService:
    backends = []
    seen = set()
    for state in service.backends:
        if state.address in seen:
            continue        # healthd lists each address once; keep the first if not
        seen.add(state.address)
        b = plan_backend(service, state, view, redirect_ifindexes, untagged, slots)
        if len(backends) >= MAX_BACKENDS:
            b = PlannedBackend(state.address, state.port, state.weight,
                               reason=f"more than {MAX_BACKENDS} backends in one service")
        backends.append(b)
    reason = ""
    if not any(b.in_table for b in backends):
        reason = "no usable backend" if backends else "no backends"
    return PlannedService(key=service.key, vip=service.vip, port=service.port, protocol=service.protocol,
                          sticky=service.sticky, backends=tuple(backends), reason=reason)


def plan(services, view, redirect_ifindexes=(), untagged=False) -> tuple:
    """PlannedService for every service healthd publishes (duplicate keys: first wins)."""
    out, seen = [], set()
    slots = redirect_slot_map(view)
    for s in services:
        if s.key in seen:
            continue
        seen.add(s.key)
        out.append(plan_service(s, view, tuple(redirect_ifindexes), untagged, slots))
    return tuple(out)


def unresolved(services, view) -> tuple:
    """Addresses (backends on local VLANs, VLAN gateways) whose MAC is unknown: to be probed."""
    out = {}
    for s in services:
        for b in s.backends:
            try:
                address = ipaddress.ip_address(b.address)
            except ValueError:
                continue
            vlan = view.vlan_for(address)
            if vlan is not None and not view.mac_of(address, vlan.ifindex):
                out.setdefault(str(address), UnresolvedNeighbour(str(address), str(vlan.lb_ip), vlan.ifname))
    for v in view.vlans:
        if v.usable and v.gateway is not None and not v.gateway_mac:
            out.setdefault(str(v.gateway), UnresolvedNeighbour(str(v.gateway), str(v.lb_ip), v.ifname))
    return tuple(out[k] for k in sorted(out))


def to_specs(planned_service: PlannedService, stateless: bool = False) -> ServiceSpec:
    """The data plane's input for one planned service (stateless: the configuration's
    `stateless` key, which healthd does not carry). A backend whose MAC is unknown is kept,
    not valid, for its slot and counters; one that is not an IP address is left out (nothing the
    kernel could hold; its reason is published)."""
    backends = []
    for b in planned_service.backends:
        if not _is_ip(b.address):
            continue
        backends.append(BackendSpec(
            b.address, mac=b.mac or netinfo.ZERO_MAC, src_mac=b.lb_mac or netinfo.ZERO_MAC,
            in_table=b.in_table, weight=max(b.weight, 0), valid=b.valid,
            redirect_slot=b.redirect_slot if b.redirect else None, vlan=b.vlan,
            src_address=b.lb_ip or None, method=b.method if b.lb_ip else "none", tunnel_port=b.tunnel_port,
            no_checksum=b.no_checksum, mtu=b.mtu if 68 <= b.mtu else 0))
    return ServiceSpec(planned_service.vip, planned_service.port, planned_service.protocol,
                       sticky=planned_service.sticky, backends=tuple(backends), stateless=stateless)


@functools.lru_cache(maxsize=65536)
def _is_ip(text: str) -> bool:
    """Every rescan re-plans every backend: the answer for an address never changes."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def redirect_slots(planned) -> dict:
    """{devmap slot: ifindex} the planned services leave through (several untagged NICs)."""
    slots = {}
    for p in planned:
        for b in p.backends:
            if b.redirect:
                slots[b.redirect_slot] = b.ifindex
    return slots
