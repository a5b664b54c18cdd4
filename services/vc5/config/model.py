"""The compiled configuration: typed, immutable, already validated.

Every daemon reads the configuration through these classes (see
docs/configuration.md, "The model (for developers)"). Addresses are ipaddress objects,
collections are tuples or FrozenDicts, and every class is a frozen dataclass.

Defaults here are the *fixed* defaults (vc5's foot-guns removed): an omitted
weight means usable (1) and an omitted need means 1.

`explicit` fields record which optional vc5 keys the YAML set: the vc5 JSON
view (vc5json.py) emits an optional key only when it was set, exactly as
vc5's config.pl does. They take no part in equality.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from vc5.common import capacity

from .frozen import FrozenDict

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

PRIORITIES = ("critical", "high", "medium", "low")
TUNNEL_TYPES = capacity.TUNNEL_TYPES    # what bpf/vc5_encap.h builds
CHECK_TYPES = ("http", "https", "syn", "dns")
XDP_MODES = ("native", "generic", "auto")

# Health-check timing defaults reproduce the Go vc5's fixed timing (docs/configuration.md,
# "Check timing"; docs/health-checks.md): a round every 2 s; a window of the last 5 rounds;
# up only when all 5 passed; down when 2 of the last 5 failed (vc5: "fewer than 4 of 5 passed").
DEFAULT_INTERVAL = 2.0
DEFAULT_RISE = 5
DEFAULT_FALL = 2
DEFAULT_FLOWS_PER_CPU = 1_000_000  # vc5 -F 0
DEFAULT_HOLD_TIME = 10             # vc5: hold time < 3 -> 10
DEFAULT_LOCAL_PREF = 100
BGP_PORT = 179


def address_key(addr) -> tuple:
    """Sort key that orders IPv4 before IPv6 (mixed ipaddress objects do not compare)."""
    return (addr.version, addr)


@dataclass(frozen=True)
class Check:
    """One health check of one backend (checks run in order; the first failure ends a round)."""

    type: str                       # "http" | "https" | "syn" | "dns"
    port: int                       # resolved: the backend's port unless the check names another
    host: Optional[str] = None      # None = the VIP (Host header / SNI)
    path: Optional[str] = None      # None = "/"
    method: Optional[str] = None    # "GET" | "HEAD" (http/https; None = GET); "udp" | "tcp" (dns)
    expect: tuple = ()              # HTTP codes; () = (200,); (0,) = any status
    timeout: Optional[float] = None  # seconds; None = the check type's default (http/syn 2 s, dns 1 s)


@dataclass(frozen=True)
class Backend:
    """A real server of one service (the VIP is configured on its loopback: DSR)."""

    address: IPAddress
    port: int
    disabled: bool = False          # trailing '*': still checked, never used
    weight: int = 1                 # 1..255 (weighted Maglev); 0 = never used
    checks: tuple = ()              # tuple[Check, ...]; empty = always passes

    @property
    def key(self) -> str:
        """vc5's JSON key for the real: "rip:port" (IPv6 unbracketed, as vc5)."""
        return f"{self.address}:{self.port}"

    @property
    def usable(self) -> bool:
        """May receive traffic when healthy: not disabled, weight above 0 (docs/data-plane.md)."""
        return not self.disabled and self.weight > 0


@dataclass(frozen=True)
class Service:
    """One VIP:port:protocol and its backends."""

    vip: IPAddress
    port: int
    protocol: str                   # "tcp" | "udp"
    name: Optional[str] = None
    description: Optional[str] = None
    priority: str = "critical"
    need: int = 1                   # service is up iff healthy usable backends >= need
    sticky: bool = False
    stateless: bool = False         # no flow-table entries: every packet through Maglev
    reset: bool = False
    scheduler: Optional[str] = None
    persist: Optional[int] = None
    tunnel_type: str = "none"
    tunnel_port: int = 0
    tunnel_no_checksum: bool = False
    disabled: bool = False          # VIP written with a trailing '*'
    interval: float = DEFAULT_INTERVAL
    timeout: Optional[float] = None
    rise: int = DEFAULT_RISE
    fall: int = DEFAULT_FALL
    backends: tuple = ()            # tuple[Backend, ...] sorted by address
    explicit: frozenset = field(default=frozenset(), compare=False)
    origin: str = field(default="", compare=False)   # "FILE:LINE:COLUMN" of the policy entry

    @property
    def key(self) -> str:
        """vc5's JSON key "vip:port:proto" (IPv6 unbracketed, as vc5)."""
        return f"{self.vip}:{self.port}:{self.protocol}"


# BFD (RFC 5880/5881) toward a BGP peer: an extension, vc5 has none (docs/bgp.md, "BFD").
DEFAULT_BFD_INTERVAL_MS = 200      # with x3: the router drops us in 0.6 s (measured under load: docs/bgp.md)
DEFAULT_BFD_MULTIPLIER = 3


@dataclass(frozen=True)
class BfdParams:
    interval_ms: int = DEFAULT_BFD_INTERVAL_MS    # our Desired Min TX (when Up) and Required Min RX
    multiplier: int = DEFAULT_BFD_MULTIPLIER      # Detect Mult


@dataclass(frozen=True)
class Peer:
    """One BGP session (after expanding bgp.peers and bgp.groups)."""

    address: IPAddress
    group: Optional[str] = None
    as_number: int = 0              # local ASN for this session
    peer_as: Optional[int] = None   # None = accept what the peer says; iBGP iff == as_number
    hold_time: int = DEFAULT_HOLD_TIME
    local_pref: int = DEFAULT_LOCAL_PREF
    med: int = 0                    # 0 = not sent
    communities: tuple = ()         # ("asn:value", ...)
    large_communities: tuple = ()   # ("a:b:c", ...)
    source_ip: Optional[IPAddress] = None
    next_hop_4: Optional[ipaddress.IPv4Address] = None
    next_hop_6: Optional[ipaddress.IPv6Address] = None
    multiprotocol: bool = False     # true when next_hop_6 is set (as vc5)
    accept: tuple = ()              # networks exported even if rejected below
    reject: tuple = ()              # networks not exported (accept wins)
    passive: bool = False
    md5: Optional[str] = field(default=None, repr=False)   # TCP MD5 password (secret: not in repr)
    port: int = BGP_PORT
    explicit: frozenset = field(default=frozenset(), compare=False)
    bfd: Optional[BfdParams] = None           # BFD toward this peer (extension; docs/bgp.md, "BFD")


@dataclass(frozen=True)
class Bgp:
    as_number: int = 0              # top-level local ASN (0 = only set per group)
    router_id: Optional[ipaddress.IPv4Address] = None
    learn: int = 0
    listen: bool = False
    peers: tuple = ()               # tuple[Peer, ...] sorted by address
    graceful_shutdown: float = 0.0
    graceful_restart: bool = False


@dataclass(frozen=True)
class Logging:
    alert: int = 0                  # webhook alerts for levels <= alert (0 EMERG .. 7 DEBUG)
    syslog: bool = False
    # Secrets, kept out of repr() (a logged object shows no secret; docs/configuration.md, "Secrets").
    slack: Optional[str] = field(default=None, repr=False)      # webhook URL
    teams: Optional[str] = field(default=None, repr=False)      # webhook URL
    # index, addresses, username, password
    elasticsearch: Mapping = field(default_factory=FrozenDict, repr=False)


@dataclass(frozen=True)
class Config:
    source: str = "<string>"
    services: tuple = ()            # tuple[Service, ...] sorted by (vip, port, protocol)
    vips: tuple = ()                # distinct VIPs, sorted
    vlans: Mapping = field(default_factory=FrozenDict)    # int -> IPv4Interface (host bits = gateway)
    vlans6: Mapping = field(default_factory=FrozenDict)   # int -> IPv6Interface
    bgp: Optional[Bgp] = None
    logging: Logging = field(default_factory=Logging)
    address: Optional[ipaddress.IPv4Address] = None
    interfaces: tuple = ()
    native: bool = False
    untagged: bool = False
    multicast: Optional[str] = None
    learn: int = 0
    host_id: Optional[str] = None
    webserver: Optional[str] = None
    webroot: Optional[str] = None
    xdp_mode: str = "generic"
    flows_per_cpu: int = DEFAULT_FLOWS_PER_CPU   # config `flows` (old name flows_per_cpu)
    flow_rate: int = 0              # new flows stored per second per CPU; 0 = the data plane's 125,000
    scheduler: Optional[str] = None  # top-level default scheduler
    defcon: Optional[int] = None
    prefixes: Mapping = field(default_factory=FrozenDict)  # name -> tuple of networks
    explicit: frozenset = field(default=frozenset(), compare=False)
    warnings: tuple = field(default=(), compare=False)     # tuple[Problem, ...]: valid but suspicious

    def service(self, key: str) -> Optional[Service]:
        """The service with vc5 key "vip:port:proto", or None."""
        for s in self.services:
            if s.key == key:
                return s
        return None

    def services_on(self, vip) -> tuple:
        """All services on one VIP (the VIP is up only if all of them are)."""
        return tuple(s for s in self.services if s.vip == vip)
