"""What the balancer host's network looks like, read with pyroute2 (netlink).

Two halves:
  * pure functions over plain records (`Interface`, `Neighbour`) that decide
    which interface, source address and MAC serve each configured VLAN
    prefix (vc5 HEAD, xvs netinfo.go `bestInterface`): unit-tested without
    root;
  * `NetReader`, which fills those records from the kernel of the current
    network namespace and probes neighbours whose MAC is not known yet.

VLAN discovery (docs/data-plane.md, "Configuration it reads"): for each configured prefix, the
candidate interfaces are up, broadcast, non-loopback and have a 6-byte MAC;
among their addresses that overlap the prefix, the one with the longest
prefix length wins (ties: lowest ifindex, then lowest address, so the choice
is deterministic). If the configured prefix has host bits set
(e.g. 10.1.10.254/24), that address is the VLAN's gateway, whose MAC comes
from the neighbour table like a backend's.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Mapping

# <linux/if.h>
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
# <linux/neighbour.h> NUD_* states
NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
# States in which the kernel's link-layer address is a real answer.
NUD_VALID = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP

DISCARD_PORT = 9   # RFC 863: a datagram here costs the neighbour nothing
ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True)
class Interface:
    name: str
    ifindex: int
    mac: str                       # "aa:bb:cc:dd:ee:ff", "" if none
    flags: int
    addresses: tuple = ()          # ipaddress.IPv4Interface / IPv6Interface
    mtu: int = 0                   # IFLA_MTU (0: unknown)

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def usable_for_vlan(self) -> bool:
        """Up, broadcast, not loopback, with an Ethernet (6-byte) MAC."""
        return (self.up and bool(self.flags & IFF_BROADCAST) and not self.flags & IFF_LOOPBACK
                and _is_ethernet_mac(self.mac))


@dataclass(frozen=True)
class Neighbour:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    mac: str
    ifindex: int
    state: int

    @property
    def valid(self) -> bool:
        return bool(self.state & NUD_VALID) and _is_ethernet_mac(self.mac) and self.mac != ZERO_MAC


@dataclass(frozen=True)
class VlanInfo:
    """Where one configured VLAN prefix lives on this host."""
    vlan: int
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network
    ifname: str = ""
    ifindex: int = 0
    lb_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    lb_mac: str = ""
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    gateway_mac: str = ""
    reason: str = ""               # why the VLAN is unusable; "" when usable

    @property
    def usable(self) -> bool:
        return self.ifindex > 0 and not self.reason


@dataclass(frozen=True)
class NetView:
    """A consistent snapshot: interfaces, VLANs (both families) and neighbour MACs."""
    interfaces: Mapping = field(default_factory=dict)   # name -> Interface
    vlans: tuple = ()                                  # VlanInfo, IPv4 and IPv6 entries
    macs: Mapping = field(default_factory=dict)        # ip_address -> mac (valid entries only)
    macs_on: Mapping = field(default_factory=dict)     # (ip_address, ifindex) -> mac

    def mac_of(self, address, ifindex=0) -> str:
        """The neighbour's MAC, preferring the entry learnt on `ifindex` (the VLAN's interface)."""
        address = ipaddress.ip_address(address)
        if ifindex and (address, ifindex) in self.macs_on:
            return self.macs_on[(address, ifindex)]
        return self.macs.get(address, "")

    def vlan_for(self, address) -> VlanInfo | None:
        """The usable VLAN whose prefix holds `address` (longest prefix wins)."""
        address = ipaddress.ip_address(address)
        best = None
        for v in self.vlans:
            if v.usable and v.prefix.version == address.version and address in v.prefix:
                if best is None or v.prefix.prefixlen > best.prefix.prefixlen:
                    best = v
        return best

    def route_vlan(self, version: int) -> VlanInfo | None:
        """Where a backend on no local prefix goes (vc5-behaviour section 1.4, "Backend location"):
        the first VLAN id of that family whose prefix names a gateway (host bits), one whose
        gateway MAC is known first; None if no prefix of that family names a gateway."""
        known = self.gateway_vlan(version)
        if known is not None:
            return known
        for v in sorted(self.vlans, key=lambda v: v.vlan):
            if v.usable and v.prefix.version == version and v.gateway is not None:
                return v
        return None

    def mtu_of(self, ifname: str) -> int:
        itf = self.interfaces.get(ifname)
        return itf.mtu if itf is not None else 0

    def gateway_vlan(self, version: int) -> VlanInfo | None:
        """vc5: the first VLAN id (1..4094) of that family that has a gateway with a known MAC."""
        for v in sorted(self.vlans, key=lambda v: v.vlan):
            if v.usable and v.prefix.version == version and v.gateway is not None and v.gateway_mac:
                return v
        return None


def _is_ethernet_mac(mac: str) -> bool:
    return isinstance(mac, str) and len(mac.split(":")) == 6


def best_interface(prefix, interfaces):
    """(Interface, address) serving `prefix`, or (None, None).

    Longest interface prefix among addresses overlapping `prefix` wins; ties go
    to the lowest ifindex, then the lowest address.
    """
    network = ipaddress.ip_interface(prefix).network
    best = None
    for itf in interfaces:
        if not itf.usable_for_vlan:
            continue
        for a in itf.addresses:
            if a.version != network.version or not a.network.overlaps(network):
                continue
            if a.ip.version == 6 and a.ip.is_link_local:
                continue
            rank = (-a.network.prefixlen, itf.ifindex, int(a.ip))
            if best is None or rank < best[0]:
                best = (rank, itf, a)
    if best is None:
        return None, None
    return best[1], best[2]


def resolve_vlans(vlans: Mapping, interfaces, macs: Mapping) -> tuple:
    """VlanInfo for each configured `vlan id -> prefix` (IPv4Interface or IPv6Interface).

    `interfaces` is an iterable of Interface; `macs` maps neighbour address -> MAC.
    A VLAN without an interface is reported with a reason, never guessed.
    """
    interfaces = list(interfaces)
    out = []
    for vid in sorted(vlans):
        configured = ipaddress.ip_interface(vlans[vid])
        network = configured.network
        gateway = None
        if configured.ip != network.network_address:
            gateway = configured.ip
        itf, address = best_interface(configured, interfaces)
        if itf is None:
            out.append(VlanInfo(vid, network, gateway=gateway,
                                reason=f"no up broadcast interface has an address in {network}"))
            continue
        gw_mac = macs.get(gateway, "") if gateway is not None else ""
        out.append(VlanInfo(vid, network, ifname=itf.name, ifindex=itf.ifindex, lb_ip=address.ip,
                            lb_mac=itf.mac, gateway=gateway, gateway_mac=gw_mac))
    return tuple(out)


def implicit_vlans(interfaces, names) -> dict:
    """VLAN table used when the config has no `vlans`: one untagged VLAN per subnet of each
    named interface, numbered from 1 in (interface order, address order).

    vc5 HEAD forwards nothing without `vlans`; vc5 v0.2 treated that case as one untagged
    subnet. We follow v0.2 (documented in docs/data-plane.md).
    """
    by_name = {i.name: i for i in interfaces}
    out, seen, vid = {}, set(), 1
    for name in names:
        itf = by_name.get(name)
        if itf is None:
            continue
        for a in sorted(itf.addresses, key=lambda a: (a.version, int(a.ip))):
            if a.version == 6 and a.ip.is_link_local:
                continue
            if a.network in seen or a.network.prefixlen in (32, 128):
                continue
            seen.add(a.network)
            out[vid] = ipaddress.ip_interface(f"{a.network.network_address}/{a.network.prefixlen}")
            vid += 1
    return out


def build_view(interfaces, neighbours, vlans: Mapping, vlans6: Mapping, implicit_from=()) -> NetView:
    """Pure: a NetView from kernel records and the configured VLAN tables."""
    interfaces = list(interfaces)
    macs, macs_on = {}, {}
    for n in neighbours:
        if n.valid:
            macs[n.address] = n.mac
            macs_on[(n.address, n.ifindex)] = n.mac
    table = dict(vlans)
    table6 = dict(vlans6)
    if not table and not table6 and implicit_from:
        implicit = implicit_vlans(interfaces, implicit_from)
        table = {k: v for k, v in implicit.items() if v.version == 4}
        table6 = {k: v for k, v in implicit.items() if v.version == 6}
    infos = resolve_vlans(table, interfaces, macs) + resolve_vlans(table6, interfaces, macs)
    return NetView(interfaces={i.name: i for i in interfaces}, vlans=infos, macs=macs, macs_on=macs_on)


# --------------------------------------------------------------------------- kernel side

def _attr(msg, name, default=None):
    value = msg.get_attr(name)
    return default if value is None else value


class NetReader:
    """Reads interfaces, addresses and neighbours of the current network namespace."""

    def __init__(self, ipr=None):
        if ipr is None:
            from pyroute2 import IPRoute
            ipr = IPRoute()
        self.ipr = ipr

    def close(self):
        self.ipr.close()

    def interfaces(self) -> list:
        addrs = {}
        for m in self.ipr.get_addr():
            address = _attr(m, "IFA_LOCAL") or _attr(m, "IFA_ADDRESS")
            if address is None:
                continue
            try:
                a = ipaddress.ip_interface(f"{address}/{m['prefixlen']}")
            except ValueError:
                continue
            addrs.setdefault(m["index"], []).append(a)
        out = []
        for link in self.ipr.get_links():
            index = link["index"]
            out.append(Interface(name=_attr(link, "IFLA_IFNAME", ""), ifindex=index,
                                 mac=(_attr(link, "IFLA_ADDRESS", "") or "").lower(),
                                 flags=link["flags"], addresses=tuple(addrs.get(index, ())),
                                 mtu=int(_attr(link, "IFLA_MTU", 0) or 0)))
        return out

    def neighbours(self) -> list:
        out = []
        for m in self.ipr.get_neighbours():
            dst = _attr(m, "NDA_DST")
            if dst is None:
                continue
            try:
                address = ipaddress.ip_address(dst)
            except ValueError:
                continue
            out.append(Neighbour(address, (_attr(m, "NDA_LLADDR", "") or "").lower(),
                                 m["ifindex"], m["state"]))
        return out

    def view(self, vlans: Mapping, vlans6: Mapping, implicit_from=()) -> NetView:
        return build_view(self.interfaces(), self.neighbours(), vlans, vlans6, implicit_from)


def probe(address, source=None, ifname=None) -> str:
    """Make the kernel resolve `address` (ARP or ND) by sending it one UDP datagram to the
    discard port from `source` (the balancer's address on that VLAN). Returns "" on
    success or the error text; never raises for network errors.
    """
    address = ipaddress.ip_address(address)
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            if ifname:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
                except OSError:
                    pass      # without CAP_NET_RAW, the source address alone picks the route
            if source is not None:
                s.bind((str(source), 0))
            s.sendto(b"vc5 neighbour probe", (str(address), DISCARD_PORT))
        return ""
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.ENOBUFS):
            return ""
        return f"{e.strerror or e}"
