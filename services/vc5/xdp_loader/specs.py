"""What the data plane is asked to hold: services and backends as plain values.

`ServiceSpec` / `BackendSpec` are the input of `DataPlane.set_service`
(dataplane.py); `planner.to_specs` builds them from a planned service. This
module is pure (no maps, no syscalls): the checks below run before anything
is written, so a refused spec changes nothing.

Backend states (docs/data-plane.md, "From healthd's Services to the maps"):
  * in_table=True (and valid, weight > 0): in the Maglev table, gets new flows;
  * in_table=False, valid=True: drained, unhealthy or disabled: no new flows,
    established flows pinned to it keep going (flow table);
  * valid=False: kept for its counters only; flows pinned to it re-select;
  * absent from the spec: removed.
`in_table` is the loader's word (planner.PlannedBackend.in_table, the D-Bus
ProgrammedBackend.in_table); healthd's `usable` (wire.BackendState.usable) is
one of its inputs.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from . import layout

METHODS = {"l2": layout.METHOD_L2, "none": layout.METHOD_L2, "ipip": layout.METHOD_IPIP,
           "gre": layout.METHOD_GRE, "fou": layout.METHOD_FOU, "gue": layout.METHOD_GUE}


class ServiceKey(NamedTuple):
    vip: str          # canonical text (ipaddress)
    port: int
    protocol: str     # "tcp" | "udp"

    def __str__(self) -> str:   # vc5/xvs "<vip>:<port>:<proto>"
        return f"{self.vip}:{self.port}:{self.protocol}"


class BackendKey(NamedTuple):
    service: ServiceKey
    address: str


@dataclass(frozen=True)
class BackendSpec:
    """One backend of a service. Tunnels (vc5 v0.3 `tunnel-type`, `tunnel-port`,
    `tunnel-no-checksum`) are per backend here: the planner copies the
    service's (or policy entry's) settings into each BackendSpec, with what
    only it knows per backend (next hop MAC, our address, egress MTU)."""
    address: str
    mac: str                          # next hop MAC (Ethernet destination): the backend's, or the gateway's
    src_mac: str                      # our MAC on the egress interface (Ethernet source)
    in_table: bool = True             # in the Maglev table (healthy, enabled, weight > 0, forwardable)
    weight: int = 1                   # 0 = not in the table; unequal weights -> weighted Maglev
    redirect_slot: int | None = None  # leave through tx_port[slot] (untagged multi-NIC); None = XDP_TX
    vlan: int = 0                     # VID a tagged frame leaves with (PCP/DEI kept); 0 = as it came
    valid: bool = True                # present for pinned flows (see module doc)
    method: str = "l2"                # tunnel-type: l2 (= none), ipip, gre, fou, gue
    tunnel_port: int = 0              # FOU/GUE UDP destination port; 0 = dropped (err_no_tunnel_port)
    src_address: str | None = None    # our address towards it: the outer source (tunnels), NAT
    no_checksum: bool = False         # tunnel-no-checksum: FOU/GUE UDP checksum 0 (outer IPv4 only)
    mtu: int = 0                      # egress MTU towards it (IP bytes); 0 = 1500

    @property
    def in_maglev(self) -> bool:
        """What set_service puts in the table: asked for, valid, and with a weight."""
        return self.in_table and self.valid and self.weight > 0


@dataclass(frozen=True)
class ServiceSpec:
    vip: str
    port: int
    protocol: str | int               # "tcp"/"udp" or 6/17
    sticky: bool = False
    backends: Sequence[BackendSpec] = field(default_factory=tuple)
    stateless: bool = False           # never store a flow (config `stateless`): every packet via Maglev


def service_key(vip, port, protocol) -> ServiceKey:
    try:
        address = ipaddress.ip_address(vip)
    except ValueError:
        raise ValueError(f"service {vip}:{port}:{protocol}: VIP {vip!r} is not an IP address") from None
    if isinstance(protocol, int):
        proto = layout.PROTOCOL_NAMES.get(protocol, str(protocol))
    else:
        proto = str(protocol).lower()
    if proto not in ("tcp", "udp"):
        raise ValueError(f"service {vip}:{port}:{protocol}: protocol must be tcp or udp")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"service {vip}:{port}:{protocol}: port must be 1..65535")
    return ServiceKey(str(address), port, proto)


def validate_backends(key: ServiceKey, specs: Sequence[BackendSpec]) -> dict[str, BackendSpec]:
    """{canonical address: spec}, in order; ValueError naming the service and backend otherwise."""
    out: dict[str, BackendSpec] = {}
    if len(specs) > layout.MAX_BACKENDS:
        raise ValueError(f"service {key}: {len(specs)} backends, at most {layout.MAX_BACKENDS}")
    for b in specs:
        where = f"service {key}: backend {b.address}"
        try:
            address = str(ipaddress.ip_address(b.address))
        except ValueError:
            raise ValueError(f"{where}: not an IP address") from None
        if address in out:
            raise ValueError(f"{where}: listed twice")
        _check_backend(where, b)
        out[address] = b
    return out


def _check_backend(where: str, b: BackendSpec) -> None:
    for name in ("mac", "src_mac"):
        try:
            layout.mac_bytes(getattr(b, name))
        except (ValueError, TypeError):
            raise ValueError(f"{where}: {name} {getattr(b, name)!r} is not a MAC address") from None
    if b.method not in METHODS:
        raise ValueError(f"{where}: method {b.method!r} not one of {', '.join(METHODS)}")
    if b.redirect_slot is not None and not 0 <= b.redirect_slot < layout.REDIRECT_SLOTS:
        raise ValueError(f"{where}: redirect_slot {b.redirect_slot} not in 0..{layout.REDIRECT_SLOTS - 1}")
    if not 0 <= b.vlan <= 4094 or not 0 <= b.tunnel_port <= 65535 or b.weight < 0:
        raise ValueError(f"{where}: vlan, tunnel_port or weight out of range")
    if b.mtu and not 68 <= b.mtu <= 65535:
        raise ValueError(f"{where}: mtu {b.mtu} not 0 (default) or 68..65535")
    src = None
    if b.src_address is not None:
        try:
            src = ipaddress.ip_address(b.src_address)
        except ValueError:
            raise ValueError(f"{where}: src_address {b.src_address!r} is not an IP address") from None
    if METHODS[b.method] != layout.METHOD_L2:
        if src is None or src.version != ipaddress.ip_address(b.address).version:
            raise ValueError(f"{where}: tunnel {b.method} needs src_address (our address towards it) "
                             "of the backend's family")


def tunnel_overhead(b: BackendSpec) -> int:
    """Bytes the encapsulation adds (outer IP + GRE/UDP/GUE); 0 for L2 DSR."""
    method = METHODS[b.method]
    if method == layout.METHOD_L2:
        return 0
    outer = 20 if ipaddress.ip_address(b.address).version == 4 else 40
    return outer + layout.TUNNEL_OVERHEAD[method]


def backend_record(b: BackendSpec, address: str, cookie: int, svc_index: int,
                   vip_index: int) -> layout.Backend:
    """The `backends` map value of one (service, backend) pair (bpf/vc5_layout.h)."""
    rec = layout.Backend()
    rec.addr = layout.addr16(address)
    if b.src_address:
        rec.saddr = layout.addr16(b.src_address)
    ct.memmove(rec.h_dest, layout.mac_bytes(b.mac), 6)
    ct.memmove(rec.h_source, layout.mac_bytes(b.src_mac), 6)
    rec.vlan = b.vlan
    rec.method = METHODS[b.method]
    rec.flags = ((layout.BE_VALID if b.valid else 0)
                 | (layout.BE_REDIRECT if b.redirect_slot is not None else 0)
                 | (layout.BE_NO_CSUM if b.no_checksum else 0))
    rec.cookie = cookie
    rec.redirect_slot = b.redirect_slot or 0
    rec.svc_index = svc_index
    rec.tunnel_port = b.tunnel_port
    rec.mtu = b.mtu
    rec.vip_index = vip_index
    return rec
