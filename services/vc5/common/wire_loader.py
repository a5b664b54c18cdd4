"""org.vc5.XdpLoader1's structs (re-exported by vc5.common.wire, which documents the conventions)."""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

from vc5.common.wire_base import Struct


# =============================================================== org.vc5.XdpLoader1

@dataclass(frozen=True)
class InterfaceStatus(Struct):
    """One configured interface and the program on it."""

    SIGNATURE: ClassVar[str] = "(sisubs)"
    name: str
    ifindex: int = 0
    mode: str = ""          # native | generic | "" (not attached)
    prog_id: int = 0
    attached: bool = False
    note: str = ""


@dataclass(frozen=True)
class VlanStatus(Struct):
    """One VLAN (or the untagged network): our address on it and its gateway."""

    SIGNATURE: ClassVar[str] = "(qsssssss)"
    vlan: int
    prefix: str = ""
    interface: str = ""
    address: str = ""       # ours on that network
    mac: str = ""           # ours
    gateway: str = ""
    gateway_mac: str = ""
    reason: str = ""        # why it is unusable; "" = usable


@dataclass(frozen=True)
class ProgrammedBackend(Struct):
    """One backend of one service as the data plane has it."""

    SIGNATURE: ClassVar[str] = "(ssbbssq)"
    address: str
    mac: str = ""
    in_table: bool = False   # in the Maglev table: new flows may go to it
    valid: bool = False      # pinned flows may use it (drained backends stay valid)
    reason: str = ""         # why it is not in the table; "" = it is
    interface: str = ""
    vlan: int = 0


@dataclass(frozen=True)
class ProgrammedService(Struct):
    """One service as the data plane has it (org.vc5.XdpLoader1.Services)."""

    SIGNATURE: ClassVar[str] = "(ssqssa" + ProgrammedBackend.SIGNATURE + ")"
    NESTED: ClassVar[Mapping[str, type]] = {"backends": ProgrammedBackend}
    key: str                 # "vip:port:proto"
    vip: str = ""
    port: int = 0
    protocol: str = ""
    reason: str = ""         # why it is not programmed; "" = it is
    backends: tuple = ()


@dataclass(frozen=True)
class ProgramInfo(Struct):
    """The XDP program in force."""

    SIGNATURE: ClassVar[str] = "(usssut)"
    prog_id: int = 0
    tag: str = ""
    name: str = ""
    pin_dir: str = ""
    layout_version: int = 0
    loaded_at: int = 0       # µs since the epoch; 0 = not loaded


@dataclass(frozen=True)
class FlowTable(Struct):
    """One flow table of the data plane (org.vc5.XdpLoader1.FlowTables, docs/data-plane.md "Flow table")."""

    SIGNATURE: ClassVar[str] = "(sttt)"
    name: str                # flows (TCP/IPv4), flows6, flows_udp, flows_udp6
    entries: int = 0         # capacity (LRU: the oldest entry goes when it is full)
    bytes: int = 0           # kernel memory of the map (fdinfo memlock), the same on any number of CPUs
    bytes_per_entry: int = 0


@dataclass(frozen=True)
class ProbeAddress(Struct):
    """Where healthd connects to probe `vip` on `backend` (docs/probe-path.md)."""

    SIGNATURE: ClassVar[str] = "(sss)"
    vip: str
    backend: str
    address: str


@dataclass(frozen=True)
class Counters(Struct):
    """GetCounters(): vc5/xvs counter names -> value, per scope (docs/observability.md)."""

    SIGNATURE: ClassVar[str] = "(a{st}a{sa{st}}a{sa{st}}a{sa{sa{st}}})"
    totals: Mapping = field(default_factory=dict)      # global
    vips: Mapping = field(default_factory=dict)        # VIP -> counters
    services: Mapping = field(default_factory=dict)    # "vip:port:proto" -> counters
    backends: Mapping = field(default_factory=dict)    # "vip:port:proto" -> backend address -> counters

    def to_dbus(self):
        return [dict(self.totals), {k: dict(v) for k, v in self.vips.items()},
                {k: dict(v) for k, v in self.services.items()},
                {k: {b: dict(c) for b, c in v.items()} for k, v in self.backends.items()}]

    @classmethod
    def from_dbus(cls, v):
        totals, vips, services, backends = v
        return cls(dict(totals), dict(vips), dict(services), dict(backends))


@dataclass(frozen=True)
class PrefixCounters(Struct):
    """GetPrefixes(limit): source prefix counters and the block list's drops (docs/data-plane.md,
    "Source prefixes and the block list"). Only non-zero counters are sent.

    On the wire each family is two byte arrays, little-endian, the same length in records:
    indexes (u32: the /20 index = IPv4 address >> 12, or the IPv6 bucket) and packets (u64).
    A 2^20-record a(ut) took dbus-next ~8 s to marshal (bench/prefixes.py); bytes take
    milliseconds. Here: `ipv4`, `ipv6` as ((index, packets), ...)."""

    SIGNATURE: ClassVar[str] = "(ayayayaya{st}a{st})"
    ipv4: tuple = ()                                   # (/20 index = IPv4 address >> 12, packets)
    ipv6: tuple = ()                                   # (bucket of the /48, packets)
    blocked: Mapping = field(default_factory=dict)     # block list entry -> packets it dropped
    totals: Mapping = field(default_factory=dict)      # blocked4, blocked6, blocked_octets

    def to_dbus(self):
        return [*_pack_pairs(self.ipv4), *_pack_pairs(self.ipv6), dict(self.blocked), dict(self.totals)]

    @classmethod
    def from_dbus(cls, v):
        slots4, packets4, slots6, packets6, blocked, totals = v
        return cls(_unpack_pairs(slots4, packets4, "ipv4"), _unpack_pairs(slots6, packets6, "ipv6"),
                   dict(blocked), dict(totals))


def _le(a):
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def _pack_pairs(pairs) -> tuple[bytes, bytes]:
    pairs = tuple(pairs)
    return (_le(array.array("I", (int(i) for i, _ in pairs))),
            _le(array.array("Q", (int(n) for _, n in pairs))))


def _unpack_pairs(index_bytes, packet_bytes, what) -> tuple:
    index, packets = array.array("I"), array.array("Q")
    index.frombytes(bytes(index_bytes))
    packets.frombytes(bytes(packet_bytes))
    if sys.byteorder != "little":
        index.byteswap()
        packets.byteswap()
    if len(index) != len(packets):
        raise ValueError(f"PrefixCounters.{what}: {len(index)} indexes but {len(packets)} counters")
    return tuple(zip(index, packets))
