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

Forwarding is L2 DSR (docs/data-plane.md, "From healthd's Services to the
maps"): the backend must sit on a VLAN
prefix of this host; its MAC comes from the neighbour table. Tunnelled
services are refused by this data plane with a reason ("tunnel-type ... not
supported"), never silently forwarded as L2.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from vc5.common import wire

from . import netinfo
from .specs import BackendSpec, ServiceSpec

MAX_BACKENDS = 255       # be[1..255]; be[0] is the service header


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
    redirect_slot: int = 0     # devmap key when redirecting: the VLAN id (as vc5 keys redirect_map)
    valid: bool = False        # present in the service: pinned flows may use it
    in_table: bool = False     # in the Maglev table: new flows may pick it
    reason: str = ""           # why not in the table ("" when in it)


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


def plan_backend(service, state, view, redirect_ifindexes=(), untagged=False) -> PlannedBackend:
    base = dict(address=state.address, port=state.port, weight=state.weight)
    if service.tunnel_type not in ("", "none"):
        return PlannedBackend(**base, reason=f"tunnel-type {service.tunnel_type} is not supported by this "
                                             "data plane (L2 DSR only)")
    try:
        address = ipaddress.ip_address(state.address)
    except ValueError:
        return PlannedBackend(**base, reason=f"not an IP address: {state.address!r}")
    if state.port != service.port:
        why = f"port {state.port} differs from the service port {service.port}; DSR needs equal ports"
        return PlannedBackend(**base, reason=why)
    vlan = view.vlan_for(address)
    if vlan is None:
        return PlannedBackend(**base, reason=f"{address} is on no local VLAN prefix; L2 DSR needs a directly "
                                             "connected backend")
    where = dict(lb_mac=vlan.lb_mac, lb_ip=str(vlan.lb_ip), vlan=0 if untagged else vlan.vlan,
                 ifname=vlan.ifname, ifindex=vlan.ifindex,
                 redirect=len(redirect_ifindexes) > 1 and vlan.ifindex in redirect_ifindexes,
                 redirect_slot=vlan.vlan)
    mac = view.mac_of(address, vlan.ifindex)
    if not mac:
        why = f"MAC unknown (no neighbour entry for {address} on {vlan.ifname})"
        return PlannedBackend(**base, **where, reason=why)
    health = _health_reason(state)
    return PlannedBackend(**base, **where, mac=mac, valid=True, in_table=not health, reason=health)


def plan_service(service, view, redirect_ifindexes=(), untagged=False) -> PlannedService:
    backends = []
    seen = set()
    for state in service.backends:
        if state.address in seen:
            continue        # healthd lists each address once; keep the first if not
        seen.add(state.address)
        b = plan_backend(service, state, view, redirect_ifindexes, untagged)
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
    for s in services:
        if s.key in seen:
            continue
        seen.add(s.key)
        out.append(plan_service(s, view, tuple(redirect_ifindexes), untagged))
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


def to_specs(planned_service: PlannedService) -> ServiceSpec:
    """The data plane's input for one planned service. A backend whose MAC is unknown is kept,
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
            src_address=b.lb_ip or None))
    return ServiceSpec(planned_service.vip, planned_service.port, planned_service.protocol,
                       sticky=planned_service.sticky, backends=tuple(backends))


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
