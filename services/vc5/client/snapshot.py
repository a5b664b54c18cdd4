"""One immutable view of everything vc5-webd and vc5ctl show (docs/observability.md).

Neither holds live references into another daemon: each daemon's published
properties, decoded by vc5.common.bus into vc5.common.wire structs, become the
frozen views below, and `take()` combines them with counter rates into a
`Snapshot`. Every renderer (JSON, Prometheus, console, vc5ctl's tables) is a
pure function of one Snapshot, so a page is always self-consistent even while
the daemons change underneath.

Invariants:
- A daemon that is not on the bus is `None` in the snapshot, never guessed:
  renderers say "absent" (console) or leave its numbers out (metrics).
- Counters are monotonic u64 from the data plane; a rate is the delta between
  two samples divided by the time between them (vc5: delta*1000/ms over its
  2-s stats refresh). A counter that went backwards (xdp-loader restarted with
  fresh maps) gives rate 0 for that interval, never a negative number.
- Timestamps are µs since the UNIX epoch; 0 means "never" (docs/architecture.md,
  "D-Bus contract").
"""

from __future__ import annotations

import functools
import ipaddress
import time
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

from vc5.common import names, wire, xvs_names

EMPTY: Mapping = MappingProxyType({})

# xvs's counter names, in vc5's order (docs/observability.md, "Prometheus").
XVS_METRICS = xvs_names.METRICS
XVS_BACKEND_COUNTERS = xvs_names.BACKEND_COUNTERS
# Counters whose per-second rate is derived (vc5's *_per_second fields).
RATED = ("packets", "octets", "flows", "blocked")      # blocked: global only (the block list)
# Gauges in the xvs families (everything else is a counter).
XVS_GAUGES = frozenset({"current", "latency"})


def frozen(mapping: Optional[Mapping]) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@functools.lru_cache(maxsize=1 << 16)
def addr_key(text: str):
    """Sort key for addresses: numeric, IPv4 before IPv6; unparsable text last."""
    try:
        a = ipaddress.ip_address(str(text).split("/")[0])
        return (a.version, int(a), "")
    except ValueError:
        return (9, 0, str(text))


# ---------------------------------------------------------------- per daemon

@dataclass(frozen=True)
class HealthView:
    """What org.vc5.Health1 publishes."""

    services: tuple = ()        # wire.ServiceState, sorted by (vip, port, protocol)
    vips: tuple = ()            # wire.VipState, sorted by address
    generation: int = 0
    config_source: str = ""

    @classmethod
    def from_wire(cls, services: Iterable[wire.ServiceState] = (), vips: Iterable[wire.VipState] = (),
                  generation: int = 0, config_source: str = "") -> "HealthView":
        ordered = tuple(sorted(services, key=lambda s: (addr_key(s.vip), s.port, s.protocol)))
        return cls(ordered, tuple(sorted(vips, key=lambda v: addr_key(v.vip))), generation, config_source)

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> "HealthView":
        """From org.vc5.Health1's properties as decoded with wire.HEALTH."""
        return cls.from_wire(props.get("Services", ()), props.get("VIPs", ()), props.get("Generation", 0),
                             props.get("ConfigSource", ""))


@dataclass(frozen=True)
class PeerStatus:
    """One BGP session, with vc5's Status fields (bgp:session.go) plus our extras."""

    address: str
    state: str = "IDLE"
    when: int = 0                   # µs since epoch of the last state change (0 = never)
    duration_s: int = 0
    update_calculation_ms: int = 0
    advertised_routes: int = 0
    withdrawn_routes: int = 0
    current_routes: int = 0
    connection_attempts: int = 0
    successful_connections: int = 0
    established_sessions: int = 0
    last_error: str = ""
    hold_time: int = 0
    local_asn: int = 0
    remote_asn: int = 0
    adj_rib_out: tuple = ()
    local_ip: str = ""
    updates_sent: int = 0
    updates_received: int = 0
    established_at: int = 0         # µs since epoch (0 unless established)
    bfd: str = ""                   # ours: the BFD session toward this peer in words ("" = no BFD)

    @classmethod
    def from_wire(cls, p: wire.PeerState) -> "PeerStatus":
        """vc5's names for bgpd's (wire.PEER_COUNTERS). `duration_s` stays 0: renderers count it
        from `when`, the same clock as every other "for" (bgpd's uptime_s is as of its read)."""
        established = p.counter("established")
        return cls(
            address=p.address, state=p.state.upper(), when=p.since,
            advertised_routes=p.counter("advertised"), withdrawn_routes=p.counter("withdrawn"),
            current_routes=len(p.advertised_prefixes), connection_attempts=p.counter("connection_attempts"),
            successful_connections=established, established_sessions=established, last_error=p.last_error,
            hold_time=p.hold_time, local_asn=p.local_asn, remote_asn=p.remote_asn,
            adj_rib_out=tuple(p.advertised_prefixes), local_ip=p.local_address,
            updates_sent=p.counter("updates_out"), updates_received=p.counter("updates_in"),
            established_at=p.established_at)


@dataclass(frozen=True)
class BgpView:
    """What org.vc5.Bgp1 publishes."""

    peers: tuple = ()           # PeerStatus, sorted by address
    advertised: tuple = ()      # VIPs (str) currently advertised: vc5's `rib`

    @classmethod
    def from_wire(cls, peers: Iterable[wire.PeerState] = (), advertised: Iterable[str] = (),
                  bfd: Iterable[wire.BfdState] = ()) -> "BgpView":
        """From Peers (wire.PeerState), Advertised (prefixes, CIDR) and Bfd (wire.BfdState)."""
        sessions = {b.address: bfd_words(b) for b in bfd}
        views = sorted((replace(PeerStatus.from_wire(p), bfd=sessions.get(p.address, "")) for p in peers),
                       key=lambda p: addr_key(p.address))
        rib = {a.split("/")[0] for a in advertised}
        return cls(tuple(views), tuple(sorted(rib, key=addr_key)))

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> "BgpView":
        """From org.vc5.Bgp1's properties as decoded with wire.BGP."""
        return cls.from_wire(props.get("Peers", ()), props.get("Advertised", ()), props.get("Bfd", ()))


def bfd_words(b: wire.BfdState) -> str:
    """One BFD session for people: its state, the detection time, why it is down."""
    words = b.state
    if b.state == "Up" and b.detection_time_ms:
        words += f", detects failure in {b.detection_time_ms} ms"
    elif b.state != "Up" and b.diagnostic:
        words += f" ({b.diagnostic})"
    return words


@dataclass(frozen=True)
class XdpView:
    """What org.vc5.XdpLoader1 publishes: data-plane counters and interfaces.

    Keys: services by vc5's "vip:port:proto"; backends by (service key, backend
    address); VIPs by address. Every counter mapping is name -> int with
    xvs's counter names (XVS_METRICS / XVS_BACKEND_COUNTERS).
    """

    globals: Mapping = field(default_factory=lambda: EMPTY)
    vips: Mapping = field(default_factory=lambda: EMPTY)
    services: Mapping = field(default_factory=lambda: EMPTY)
    backends: Mapping = field(default_factory=lambda: EMPTY)
    macs: Mapping = field(default_factory=lambda: EMPTY)           # backend address -> "aa:bb:cc:dd:ee:ff"
    interfaces: tuple = ()
    started: float = 0.0            # UNIX seconds the data plane was loaded (0 = unknown)
    flow_tables: tuple = ()         # wire.FlowTable: capacity and memory of each flow table

    @property
    def latency_ns(self) -> int:
        """Mean ns per packet. xdp-loader publishes the mean as global `latency_ns`; a total
        `latency_ns` with `latency_packets`, or vc5's `latency`, are understood too."""
        g = self.globals
        if "latency" in g:
            return int(g["latency"])
        if "latency_packets" in g:
            return int(g.get("latency_ns", 0) / g["latency_packets"]) if g["latency_packets"] else 0
        return int(g.get("latency_ns", 0))

    @classmethod
    def from_counters(cls, counters: Optional[wire.Counters], interfaces: Iterable[str] = (),
                      macs: Optional[Mapping] = None, started: float = 0.0) -> "XdpView":
        """From GetCounters() (None: not read, every counter 0) and what the properties say."""
        c = counters if counters is not None else wire.Counters()
        backends = {(svc, rip): frozen(n) for svc, rips in c.backends.items() for rip, n in rips.items()}
        return cls(globals=frozen(c.totals), vips=MappingProxyType({k: frozen(v) for k, v in c.vips.items()}),
                   services=MappingProxyType({k: frozen(v) for k, v in c.services.items()}),
                   backends=MappingProxyType(backends), macs=frozen(macs), interfaces=tuple(interfaces),
                   started=float(started))

    @classmethod
    def from_properties(cls, counters: Optional[wire.Counters], props: Mapping[str, Any]) -> "XdpView":
        """From GetCounters() and org.vc5.XdpLoader1's properties as decoded with wire.XDP_LOADER:
        Services (backend MACs), Interfaces (names), ProgramInfo (loaded at, µs)."""
        macs = {b.address: b.mac for s in props.get("Services", ()) for b in s.backends if b.mac}
        interfaces = (i.name for i in props.get("Interfaces", ()))
        info = props.get("ProgramInfo")
        loaded_us = info.loaded_at if info is not None else 0
        view = cls.from_counters(counters, interfaces, macs, loaded_us / 1e6)
        return replace(view, flow_tables=tuple(props.get("FlowTables", ())))


# ---------------------------------------------------------------- rates

@dataclass(frozen=True)
class Sample:
    at: float           # time.monotonic()
    xdp: Optional[XdpView]


@dataclass(frozen=True)
class Rates:
    """Per-second rates of RATED counters between the last two samples."""

    globals: Mapping = field(default_factory=lambda: EMPTY)
    vips: Mapping = field(default_factory=lambda: EMPTY)
    services: Mapping = field(default_factory=lambda: EMPTY)
    backends: Mapping = field(default_factory=lambda: EMPTY)


def _rate_of(new: Mapping, old: Mapping, seconds: float) -> Mapping:
    out = {}
    for name in RATED:
        delta = int(new.get(name, 0)) - int(old.get(name, 0))
        out[name] = int(delta / seconds) if delta > 0 and seconds > 0 else 0
    return MappingProxyType(out)


def rates(new: Sample, old: Optional[Sample]) -> Rates:
    if old is None or new.xdp is None or old.xdp is None or new.at <= old.at:
        return Rates()
    dt = new.at - old.at
    a, b = new.xdp, old.xdp
    return Rates(
        globals=_rate_of(a.globals, b.globals, dt),
        vips=MappingProxyType({k: _rate_of(v, b.vips.get(k, EMPTY), dt) for k, v in a.vips.items()}),
        services=MappingProxyType({k: _rate_of(v, b.services.get(k, EMPTY), dt)
                                   for k, v in a.services.items()}),
        backends=MappingProxyType({k: _rate_of(v, b.backends.get(k, EMPTY), dt)
                                   for k, v in a.backends.items()}),
    )


# ---------------------------------------------------------------- snapshot

@dataclass(frozen=True)
class Snapshot:
    now: float                          # time.time() when taken
    started: float                      # time.time() the reader started (uptime origin if no data plane)
    health: Optional[HealthView] = None
    bgp: Optional[BgpView] = None
    xdp: Optional[XdpView] = None
    rates: Rates = field(default_factory=Rates)
    config: Any = None                  # vc5.config.Config, or None if it could not be read
    config_error: str = ""

    @property
    def uptime(self) -> int:
        """Seconds since the data plane was loaded (vc5: process uptime), else since the reader started."""
        origin = self.xdp.started if self.xdp is not None and self.xdp.started else self.started
        return max(0, int(self.now - origin))

    def seconds_since(self, since_us: int) -> int:
        """vc5's `for`: whole seconds since a state change (0 if never)."""
        if not since_us:
            return 0
        return max(0, int(self.now - since_us / 1e6))

    def service_counters(self, key: str) -> Mapping:
        return self.xdp.services.get(key, EMPTY) if self.xdp else EMPTY

    def backend_counters(self, key: str, address: str) -> Mapping:
        return self.xdp.backends.get((key, address), EMPTY) if self.xdp else EMPTY

    def config_service(self, key: str):
        if self.config is None:
            return None
        finder = getattr(self.config, "service", None)
        return finder(key) if finder else None

    @property
    def absent(self) -> tuple:
        """Bus names of the daemons that are not running (in a fixed order)."""
        return tuple(name for name, view in ((names.HEALTH_BUS, self.health), (names.BGP_BUS, self.bgp),
                                             (names.XDP_LOADER_BUS, self.xdp)) if view is None)


def take(health=None, bgp=None, xdp=None, previous: Optional[Sample] = None, started=None,
         config=None, config_error="", now=None, monotonic=None):
    """Combine the per-daemon views into a Snapshot; returns (snapshot, sample)."""
    sample = Sample(at=time.monotonic() if monotonic is None else monotonic, xdp=xdp)
    now = time.time() if now is None else now
    snap = Snapshot(now=now, started=now if started is None else started, health=health, bgp=bgp,
                    xdp=xdp, rates=rates(sample, previous), config=config, config_error=config_error)
    return snap, sample
