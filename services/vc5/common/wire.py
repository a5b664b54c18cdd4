"""Every value vc5's daemons put on the bus, as typed structs: one definition each.

The publisher (healthd, bgpd, xdp-loader) encodes with `to_dbus()`, every
subscriber (the others, webd, vc5ctl) decodes with `from_dbus()`, so nobody
indexes a D-Bus struct by position and the two ends cannot drift. The shipped
introspection XML (vc5/dbus/*.xml) uses the signatures below; a unit test
checks every property, signal and method reply of the XML against them.

An interface is described by an `Interface` schema (HEALTH, BGP, XDP_LOADER at
the bottom): property name -> `Prop` (signature, encoder, decoder). The
Publisher in vc5.common.bus encodes with it; watch_properties(schema=...)
decodes with it.

Conventions (docs/architecture.md, "D-Bus contract"):
- timestamps are microseconds since the UNIX epoch (CLOCK_REALTIME), as
  systemd's own `t` timestamps; 0 means "never";
- prefixes are strings in CIDR form, addresses in their canonical text form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from vc5.common import names
from vc5.common.wire_base import Struct  # noqa: F401  (re-exported)


# =============================================================== org.vc5.Health1

@dataclass(frozen=True)
class BackendState(Struct):
    """One backend of one service as healthd sees it."""

    SIGNATURE: ClassVar[str] = "(sqqbbbtsu)"
    address: str
    port: int
    weight: int = 1
    disabled: bool = False   # trailing '*' in the config: checked, never used
    drained: bool = False    # operator drain at run time: pinned flows stay, no new ones
    up: bool = False         # health-check verdict
    since: int = 0
    diagnostic: str = ""
    took_ms: int = 0

    @property
    def usable(self) -> bool:
        """Invariant: only usable backends may enter the Maglev table (the loader adds its own reasons)."""
        return self.up and not self.disabled and not self.drained and self.weight > 0

    def to_dbus(self):   # hot path (thousands per signal): written out, same order as the fields
        return [self.address, self.port, self.weight, self.disabled, self.drained,
                self.up, self.since, self.diagnostic, self.took_ms]

    @classmethod
    def from_dbus(cls, v):
        return cls(*v)


@dataclass(frozen=True)
class ServiceState(Struct):
    """Desired data-plane state of one service ("vip:port:proto") with its backends."""

    SIGNATURE: ClassVar[str] = "(sqssssbqsqbbtqa" + BackendState.SIGNATURE + ")"
    NESTED: ClassVar[Mapping[str, type]] = {"backends": BackendState}
    vip: str
    port: int
    protocol: str
    name: str = ""
    description: str = ""
    priority: str = "critical"
    sticky: bool = False
    need: int = 1
    tunnel_type: str = "none"
    tunnel_port: int = 0
    tunnel_no_checksum: bool = False
    up: bool = False
    since: int = 0
    available: int = 0
    backends: tuple = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """vc5's service key "vip:port:proto"."""
        return f"{self.vip}:{self.port}:{self.protocol}"

    def to_dbus(self):   # hot path: written out
        return [self.vip, self.port, self.protocol, self.name, self.description, self.priority,
                self.sticky, self.need, self.tunnel_type, self.tunnel_port, self.tunnel_no_checksum,
                self.up, self.since, self.available, [b.to_dbus() for b in self.backends]]

    @classmethod
    def from_dbus(cls, v):
        *head, backends = v
        return cls(*head, backends=tuple(BackendState.from_dbus(b) for b in backends))


@dataclass(frozen=True)
class VipState(Struct):
    """A VIP is up iff every service on it is up; bgpd advertises from this."""

    SIGNATURE: ClassVar[str] = "(sbt)"
    vip: str
    up: bool = False
    since: int = 0


@dataclass(frozen=True)
class ProbeRound(Struct):
    """One entry of ProbeLog: a probe of one backend."""

    SIGNATURE: ClassVar[str] = "(tbsus)"
    time: int
    passed: bool
    diagnostic: str
    took_ms: int
    target: str          # what was connected to: "addr:port" or "addr"


@dataclass(frozen=True)
class Transition(Struct):
    """Signal org.vc5.Health1.Transition: one state change and its log line."""

    SIGNATURE: ClassVar[str] = "(ssqssbs)"
    kind: str            # backend | service | vip | vip-removed
    vip: str
    port: int
    protocol: str
    backend: str
    up: bool
    text: str            # e.g. "Backend 10.1.10.10:80 for service 192.0.2.1:80:tcp went down"


# Kept for readers of the older module: the array signatures of Health1's properties.
BACKEND_SIGNATURE = BackendState.SIGNATURE
SERVICE_SIGNATURE = ServiceState.SIGNATURE
SERVICES_SIGNATURE = "a" + SERVICE_SIGNATURE
VIP_SIGNATURE = VipState.SIGNATURE
VIPS_SIGNATURE = "a" + VIP_SIGNATURE


def services_to_dbus(services):
    return [s.to_dbus() for s in services]


def services_from_dbus(value):
    return tuple(ServiceState.from_dbus(v) for v in value)


def vips_to_dbus(vips):
    return [v.to_dbus() for v in vips]


def vips_from_dbus(value):
    return tuple(VipState.from_dbus(v) for v in value)


# =============================================================== org.vc5.Bgp1

@dataclass(frozen=True)
class PeerState(Struct):
    """One configured BGP peer (org.vc5.Bgp1.Peers), sorted by address on the bus."""

    SIGNATURE: ClassVar[str] = "(ssstttqqasasa{st}sassuus)"
    address: str
    group: str = ""                 # "" = none
    state: str = "Idle"             # Idle | Connect | Active | OpenSent | OpenConfirm | Established
    since: int = 0                  # last state change
    established_at: int = 0         # 0 unless Established
    uptime_s: int = 0               # seconds Established, as of the read
    hold_time: int = 0              # negotiated; 0 unless OpenConfirm/Established
    keepalive_s: int = 0
    capabilities: tuple = ()        # the peer's: "mp:ipv4-unicast", "4-octet-as", ...
    families: tuple = ()            # negotiated: "ipv4-unicast", ...
    counters: Mapping = field(default_factory=dict)   # PEER_COUNTERS -> n
    last_error: str = ""
    advertised_prefixes: tuple = ()  # this peer's Adj-RIB-Out
    local_address: str = ""         # "" unless connected
    local_asn: int = 0
    remote_asn: int = 0             # configured, or learned from the OPEN; 0 = unknown
    remote_id: str = ""             # the peer's BGP identifier; "" = unknown

    def counter(self, name: str) -> int:
        return int(self.counters.get(name, 0))


# The keys of PeerState.counters, in the order bgpd keeps them.
PEER_COUNTERS = ("updates_in", "updates_out", "advertised", "withdrawn", "connection_attempts",
                 "established", "notifications_in", "notifications_out")


@dataclass(frozen=True)
class PeerStateChange(Struct):
    """Signal org.vc5.Bgp1.PeerStateChanged; reason says why (e.g. the NOTIFICATION)."""

    SIGNATURE: ClassVar[str] = "(ssss)"
    address: str
    old_state: str
    new_state: str
    reason: str


@dataclass(frozen=True)
class HeldVip(Struct):
    """A VIP up in healthd that bgpd does not offer to peers, and why (org.vc5.Bgp1.DataPlane)."""

    SIGNATURE: ClassVar[str] = "(ss)"
    vip: str
    reason: str = ""


@dataclass(frozen=True)
class DataPlaneGate(Struct):
    """org.vc5.Bgp1.DataPlane: fail-safe advertising (docs/bgp.md, "Fail-safe advertising")."""

    SIGNATURE: ClassVar[str] = "(ssta" + HeldVip.SIGNATURE + ")"
    NESTED: ClassVar[Mapping[str, type]] = {"held": HeldVip}
    state: str = "ignored"   # ignored | ready | holding | down
    detail: str = ""
    until: int = 0           # holding: when the kept VIPs go (µs since the epoch); 0 otherwise
    held: tuple = ()


@dataclass(frozen=True)
class BfdState(Struct):
    """One BFD session toward a BGP peer (org.vc5.Bgp1.Bfd; an extension, docs/bgp.md "BFD")."""

    SIGNATURE: ClassVar[str] = "(ssssuuuutuutt)"
    address: str
    state: str = "Down"             # AdminDown | Down | Init | Up (RFC 5880 bfd.SessionState)
    remote_state: str = "Down"      # the peer's, from its last packet
    diagnostic: str = ""            # our bfd.LocalDiag in words, e.g. "Control Detection Time Expired"
    local_discriminator: int = 0
    remote_discriminator: int = 0   # 0 = none heard within the Detection Time
    tx_interval_ms: int = 0         # between our packets, before jitter
    detection_time_ms: int = 0      # silence after which we declare the session down; 0 = none yet
    since: int = 0                  # last state change (µs since the epoch)
    up_count: int = 0               # times the session came Up
    down_count: int = 0             # times it left Up
    packets_in: int = 0
    packets_out: int = 0


# =============================================================== org.vc5.XdpLoader1 (wire_loader.py)

from vc5.common.wire_loader import (  # noqa: E402,F401  (re-exported: wire.X for every struct)
    Counters, FlowTable, InterfaceStatus, PrefixCounters, ProbeAddress, ProgramInfo, ProgrammedBackend,
    ProgrammedService, VlanStatus)


# =============================================================== interface schemas

def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Prop:
    """One property: its D-Bus signature and how typed values cross the wire."""

    signature: str
    encode: Callable[[Any], Any] = _identity
    decode: Callable[[Any], Any] = _identity

    @classmethod
    def scalar(cls, signature: str) -> "Prop":
        return cls(signature)

    @classmethod
    def strings(cls) -> "Prop":
        return cls("as", list, tuple)

    @classmethod
    def struct(cls, struct: type) -> "Prop":
        return cls(struct.SIGNATURE, struct.to_dbus, struct.from_dbus)

    @classmethod
    def array(cls, struct: type) -> "Prop":
        return cls("a" + struct.SIGNATURE, lambda items: [s.to_dbus() for s in items],
                   lambda value: tuple(struct.from_dbus(v) for v in value))


@dataclass(frozen=True)
class Interface:
    """What one read interface publishes: properties, signals, method replies."""

    name: str
    properties: Mapping[str, Prop]
    signals: Mapping[str, type] = field(default_factory=dict)     # member -> Struct of its args
    replies: Mapping[str, str] = field(default_factory=dict)      # method -> out signature

    def decode(self, values: Mapping[str, Any]) -> dict:
        """Typed values from plain (Variant-unwrapped) ones; unknown names are kept as they are.

        Raises ValueError or TypeError naming the property when a value has the wrong shape.
        """
        out = {}
        for name, value in values.items():
            prop = self.properties.get(name)
            try:
                out[name] = prop.decode(value) if prop is not None else value
            except (TypeError, ValueError) as e:
                raise ValueError(f"{self.name}.{name}: {e}") from e
        return out

    def encode(self, name: str, value: Any) -> Any:
        return self.properties[name].encode(value)


HEALTH = Interface(names.HEALTH_IFACE, {
    "Services": Prop.array(ServiceState),
    "VIPs": Prop.array(VipState),
    "Generation": Prop.scalar("t"),
    "ConfigSource": Prop.scalar("s"),
    "LoadedAt": Prop.scalar("t"),
    "ProbePath": Prop.scalar("s"),
    "LastReloadError": Prop.scalar("s"),
    "Debug": Prop.scalar("b"),
}, signals={"Transition": Transition}, replies={"ProbeLog": "a" + ProbeRound.SIGNATURE})

BGP = Interface(names.BGP_IFACE, {
    "Peers": Prop.array(PeerState),
    "Advertised": Prop.strings(),
    "AsNumber": Prop.scalar("u"),
    "RouterId": Prop.scalar("s"),
    "ShuttingDown": Prop.scalar("b"),
    "HealthConnected": Prop.scalar("b"),
    "Generation": Prop.scalar("t"),
    "LastReloadError": Prop.scalar("s"),
    "DataPlane": Prop.struct(DataPlaneGate),
    "Maintenance": Prop.scalar("s"),
    "Bfd": Prop.array(BfdState),
}, signals={"PeerStateChanged": PeerStateChange})

XDP_LOADER = Interface(names.XDP_LOADER_IFACE, {
    "Mode": Prop.scalar("s"),
    "Status": Prop.scalar("s"),
    "Active": Prop.scalar("b"),
    "Interfaces": Prop.array(InterfaceStatus),
    "Vlans": Prop.array(VlanStatus),
    "Services": Prop.array(ProgrammedService),
    "ProgramInfo": Prop.struct(ProgramInfo),
    "ProbeAddresses": Prop.array(ProbeAddress),
    "Learning": Prop.scalar("b"),
    "FlowTables": Prop.array(FlowTable),
    "Blocked": Prop.strings(),
}, replies={"GetCounters": Counters.SIGNATURE, "GetPrefixes": PrefixCounters.SIGNATURE})

SCHEMAS = {names.HEALTH_IFACE: HEALTH, names.BGP_IFACE: BGP, names.XDP_LOADER_IFACE: XDP_LOADER}

# Struct classes by their signature (to decode a method reply known by its signature).
STRUCTS_BY_SIGNATURE = {cls.SIGNATURE: cls for cls in Struct.__subclasses__()}
