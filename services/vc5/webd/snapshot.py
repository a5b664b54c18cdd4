"""One immutable view of everything webd shows, taken every 2 s.

webd never holds live references into another daemon: the D-Bus reader
(`reader.py`) turns each daemon's published properties into the frozen views
below, and `take()` combines them with counter rates into a `Snapshot`. Every
renderer (JSON, Prometheus, console) is a pure function of one Snapshot, so a
page is always self-consistent even while the daemons change underneath.

Invariants:
- A daemon that is not on the bus is `None` in the snapshot, never guessed:
  renderers say "absent" (console) or leave its numbers out (metrics).
- Counters are monotonic u64 from the data plane; a rate is the delta between
  two samples divided by the time between them (vc5: delta*1000/ms over its
  2-s stats refresh). A counter that went backwards (xdp-loader restarted with
  fresh maps) gives rate 0 for that interval, never a negative number.
- Timestamps from healthd are µs since the UNIX epoch; 0 means "never".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional

from vc5.common import wire, xvs_names

EMPTY: Mapping = MappingProxyType({})

# xvs's counter names, in vc5's order (spec §1.10).
XVS_METRICS = xvs_names.METRICS
XVS_BACKEND_COUNTERS = xvs_names.BACKEND_COUNTERS
# Counters whose per-second rate webd derives (vc5's *_per_second fields).
RATED = ("packets", "octets", "flows")
# Gauges in the xvs families (everything else is a counter).
XVS_GAUGES = frozenset({"current", "latency"})

# vc5's BGP session Status fields (bgp:session.go), in its order.
PEER_FIELDS = (
    "state", "when", "duration_s", "update_calculation_ms", "advertised_routes",
    "withdrawn_routes", "current_routes", "connection_attempts", "successful_connections",
    "established_sessions", "last_error", "hold_time", "local_asn", "remote_asn",
    "adj_rib_out", "local_ip",
)


def frozen(mapping: Optional[Mapping]) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


def unwrap(value: Any) -> Any:
    """Plain Python values from dbus-next Variants (recursively)."""
    inner = getattr(value, "value", None)
    if inner is not None and hasattr(value, "signature"):
        return unwrap(inner)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    return value


def counters(mapping: Optional[Mapping]) -> Mapping:
    """A frozen name -> int mapping; unknown or non-numeric values are dropped."""
    out = {}
    for k, v in (mapping or {}).items():
        v = unwrap(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[str(k)] = int(v)
    return MappingProxyType(out)


# ---------------------------------------------------------------- per daemon

@dataclass(frozen=True)
class HealthView:
    """What org.vc5.Health1 publishes."""

    services: tuple = ()        # wire.ServiceState, sorted by (vip, port, protocol)
    vips: tuple = ()            # wire.VipState
    generation: int = 0
    config_source: str = ""

    @classmethod
    def from_wire(cls, services=(), vips=(), generation=0, config_source=""):
        ordered = tuple(sorted(services, key=lambda s: (_addr_key(s.vip), s.port, s.protocol)))
        return cls(ordered, tuple(sorted(vips, key=lambda v: _addr_key(v.vip))),
                   int(generation or 0), str(config_source or ""))

    @classmethod
    def from_dbus(cls, services_value, vips_value, generation=0, config_source=""):
        return cls.from_wire(wire.services_from_dbus(unwrap(services_value) or []),
                             wire.vips_from_dbus(unwrap(vips_value) or []),
                             unwrap(generation), unwrap(config_source))


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

    @classmethod
    def from_mapping(cls, address: str, m: Mapping):
        m = unwrap(dict(m))
        known = {k: m[k] for k in cls.__dataclass_fields__ if k in m and k != "address"}
        if "adj_rib_out" in known:
            known["adj_rib_out"] = tuple(str(p) for p in known["adj_rib_out"] or ())
        for k in ("state", "last_error", "local_ip"):
            if k in known:
                known[k] = str(known[k])
        return cls(address=str(address), **known)


@dataclass(frozen=True)
class BgpView:
    """What org.vc5.Bgp1 publishes."""

    peers: tuple = ()           # PeerStatus, sorted by address
    advertised: tuple = ()      # VIPs (str) currently advertised: vc5's `rib`

    @classmethod
    def from_dbus(cls, peers_value, advertised_value):
        """From org.vc5.Bgp1's Peers (a(sssttqqasasa{st}sassuus)) and Advertised (as).

        Dicts keyed by peer address (vc5's Status field names) are accepted too.
        """
        peers_value = unwrap(peers_value) or {}
        peers = []
        if isinstance(peers_value, dict):
            for addr, fields in peers_value.items():
                peers.append(PeerStatus.from_mapping(addr, fields))
        else:
            for item in peers_value:
                if isinstance(item, dict):
                    peers.append(PeerStatus.from_mapping(item.get("address", ""), item))
                else:
                    peers.append(peer_from_struct(item))
        rib = [str(a).split("/")[0] for a in unwrap(advertised_value) or []]
        return cls(tuple(sorted(peers, key=lambda p: _addr_key(p.address))),
                   tuple(sorted(set(rib), key=_addr_key)))


def peer_from_struct(v) -> PeerStatus:
    """One org.vc5.Bgp1 Peers struct:
    (address, group, state, since, established_at, hold_time, keepalive_s, capabilities, families,
     counters a{st}, last_error, advertised_prefixes, local_address, local_asn, remote_asn, remote_id).
    A 17-field variant with uptime_s (q/t) after established_at is accepted too.
    """
    v = list(v)
    if len(v) == 17:
        del v[5]
    (address, _group, state, since, established_at, hold_time, _keepalive, _caps, _families, ctr,
     last_error, adj_rib_out, local_address, local_asn, remote_asn, _remote_id) = v
    ctr = dict(ctr or {})
    return PeerStatus(
        address=str(address), state=str(state).upper(), when=int(since or 0),
        duration_s=0, advertised_routes=int(ctr.get("advertised", 0)),
        withdrawn_routes=int(ctr.get("withdrawn", 0)), current_routes=len(adj_rib_out or ()),
        connection_attempts=int(ctr.get("connection_attempts", 0)),
        successful_connections=int(ctr.get("established", 0)),
        established_sessions=int(ctr.get("established", 0)), last_error=str(last_error or ""),
        hold_time=int(hold_time or 0), local_asn=int(local_asn or 0), remote_asn=int(remote_asn or 0),
        adj_rib_out=tuple(str(p) for p in adj_rib_out or ()), local_ip=str(local_address or ""),
        updates_sent=int(ctr.get("updates_out", 0)), updates_received=int(ctr.get("updates_in", 0)),
        established_at=int(established_at or 0))


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
    def from_counters(cls, value, interfaces=(), macs=None, started=0.0):
        """Build from the loader's counter tree (see `parse_counters`)."""
        tree = parse_counters(unwrap(value) or {})
        return cls(globals=tree["global"], vips=tree["vips"], services=tree["services"],
                   backends=tree["backends"], macs=frozen(macs), interfaces=tuple(interfaces),
                   started=float(started or 0))


def xdp_from_dbus(counters_value, properties: Mapping) -> XdpView:
    """From GetCounters()'s (a{st} global, a{sa{st}} per VIP, a{sa{st}} per service key,
    a{sa{sa{st}}} per service key -> backend address) and the loader's properties
    (Services: backend MACs; Interfaces: names; ProgramInfo: loaded at, µs)."""
    g, vips, services, backends = (unwrap(counters_value) or [{}, {}, {}, {}])[:4]
    macs = {}
    for svc in properties.get("Services") or ():
        for b in svc[5] if len(svc) > 5 else ():
            if b[1]:
                macs[str(b[0])] = str(b[1])
    interfaces = tuple(str(i[0]) for i in properties.get("Interfaces") or ())
    info = properties.get("ProgramInfo") or ()
    loaded_us = int(info[5]) if len(info) > 5 else 0
    tree = {"global": g or {}, "vips": vips or {}, "services": services or {}, "backends": backends or {}}
    return XdpView.from_counters(tree, interfaces=interfaces, macs=macs, started=loaded_us / 1e6)


def parse_counters(tree: Mapping) -> dict:
    """Normalise the loader's counter tree into frozen mappings.

    Accepted shape (a{sa{st}} after unwrapping), keyed by scope:
      "global"                      -> {name: n}   (includes "latency" in ns)
      "vip:<addr>"                  -> {name: n}
      "service:<vip>:<port>:<proto>" -> {name: n}
      "backend:<vip>:<port>:<proto>:<rip>" -> {name: n}
    Nested dicts {"global": {...}, "vips": {...}, "services": {...},
    "backends": {svc: {rip: {...}}}} are accepted too.
    """
    out = {"global": {}, "vips": {}, "services": {}, "backends": {}}
    if any(k in tree for k in ("vips", "services", "backends")) and all(
            isinstance(v, dict) for v in tree.values()):
        out["global"] = counters(tree.get("global"))
        out["vips"] = {k: counters(v) for k, v in (tree.get("vips") or {}).items()}
        out["services"] = {k: counters(v) for k, v in (tree.get("services") or {}).items()}
        for svc, rips in (tree.get("backends") or {}).items():
            for rip, c in rips.items():
                out["backends"][(svc, rip)] = counters(c)
    else:
        for scope, c in tree.items():
            kind, _, rest = str(scope).partition(":")
            if kind == "global":
                out["global"] = counters(c)
            elif kind == "vip":
                out["vips"][rest] = counters(c)
            elif kind == "service":
                out["services"][rest] = counters(c)
            elif kind == "backend":
                svc, _, rip = rest.rpartition(":")
                out["backends"][(svc, rip)] = counters(c)
    out["global"] = counters(out["global"])
    return {k: (MappingProxyType(v) if isinstance(v, dict) else v) for k, v in out.items()}


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
    started: float                      # time.time() webd started (uptime origin if no data plane)
    health: Optional[HealthView] = None
    bgp: Optional[BgpView] = None
    xdp: Optional[XdpView] = None
    rates: Rates = field(default_factory=Rates)
    config: Any = None                  # vc5.config.Config, or None if it could not be read
    config_error: str = ""

    @property
    def uptime(self) -> int:
        """Seconds since the data plane was loaded (vc5: process uptime), else since webd started."""
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
        from vc5.common import names
        out = []
        for name, view in ((names.HEALTH_BUS, self.health), (names.BGP_BUS, self.bgp),
                           (names.XDP_LOADER_BUS, self.xdp)):
            if view is None:
                out.append(name)
        return tuple(out)


def take(health=None, bgp=None, xdp=None, previous: Optional[Sample] = None, started=None,
         config=None, config_error="", now=None, monotonic=None):
    """Combine the per-daemon views into a Snapshot; returns (snapshot, sample)."""
    sample = Sample(at=time.monotonic() if monotonic is None else monotonic, xdp=xdp)
    now = time.time() if now is None else now
    snap = Snapshot(now=now, started=now if started is None else started, health=health, bgp=bgp,
                    xdp=xdp, rates=rates(sample, previous), config=config, config_error=config_error)
    return snap, sample


def _addr_key(text: str):
    """Sort addresses numerically, IPv4 before IPv6; unparsable text last."""
    import ipaddress
    try:
        a = ipaddress.ip_address(str(text).split("/")[0])
        return (a.version, int(a), "")
    except ValueError:
        return (9, 0, str(text))
