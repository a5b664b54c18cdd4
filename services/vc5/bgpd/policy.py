"""What one peer is sent: vc5's accept/reject filters, address families, path attributes.

Filter (vc5 bgp:rib.go): a prefix that matches an `accept` network is exported;
otherwise one that matches a `reject` network is suppressed; otherwise exported.
"""

import ipaddress
from dataclasses import dataclass

from . import attributes as attr
from .capabilities import IPV4_UNICAST, IPV6_UNICAST


def _matches(prefix, networks) -> bool:
    return any(prefix.version == n.version and prefix.subnet_of(n) for n in networks)


def exported(prefix, accept=(), reject=()) -> bool:
    if _matches(prefix, accept):
        return True
    return not _matches(prefix, reject)


def family_of(prefix_or_address):
    return IPV4_UNICAST if prefix_or_address.version == 4 else IPV6_UNICAST


def offered_families(peer) -> tuple:
    """Families we offer in OPEN: both with `multiprotocol`, else only the session's own (vc5)."""
    if peer.multiprotocol:
        return (IPV4_UNICAST, IPV6_UNICAST)
    return (family_of(peer.address),)


@dataclass(frozen=True)
class SessionFacts:
    """What the session learned when it came up (from the OPENs and the socket)."""

    local_asn: int
    remote_asn: int
    four_octet: bool
    families: tuple
    local_address: object = None      # IPv4Address / IPv6Address of our end of the TCP connection
    router_id: object = None

    @property
    def ibgp(self) -> bool:
        return self.local_asn == self.remote_asn


def next_hop(peer, facts: SessionFacts, version: int):
    """NEXT_HOP for a route of IP `version` (vc5: next_hop_4 / next_hop_6, else our end of the session,
    IPv4 falling back to the router ID); None if there is no usable one."""
    local = facts.local_address
    if version == 4:
        if peer.next_hop_4 is not None:
            return peer.next_hop_4
        if local is not None and local.version == 4:
            return local
        if local is not None and getattr(local, "ipv4_mapped", None):
            return local.ipv4_mapped
        return facts.router_id
    if peer.next_hop_6 is not None:
        return peer.next_hop_6
    if local is not None and local.version == 6 and not local.ipv4_mapped:
        return local
    return None


def path_attributes(peer, facts: SessionFacts, version: int, graceful_shutdown: bool = False):
    """The attributes this peer gets for routes of IP `version`, or None when they cannot be sent."""
    nh = next_hop(peer, facts, version)
    if nh is None:
        return None
    communities = tuple(attr.parse_community(c) for c in peer.communities)
    if graceful_shutdown and attr.GRACEFUL_SHUTDOWN not in communities:
        communities += (attr.GRACEFUL_SHUTDOWN,)   # RFC 8326 §4: add, keep the others
    return attr.PathAttributes(
        as_path=() if facts.ibgp else (facts.local_asn,),
        next_hop=ipaddress.ip_address(nh),
        med=peer.med,
        local_pref=peer.local_pref if facts.ibgp else None,   # LOCAL_PREF is iBGP only (RFC 4271 §5.1.5)
        communities=communities,
        large_communities=tuple(attr.parse_large_community(c) for c in peer.large_communities),
    )


def adj_rib_out(rib, peer, facts: SessionFacts, graceful_shutdown: bool = False) -> dict:
    """prefix -> PathAttributes: what this peer should hold, given the RIB (a set of prefixes)."""
    out = {}
    by_version = {}
    for prefix in rib:
        if family_of(prefix) not in facts.families or not exported(prefix, peer.accept, peer.reject):
            continue
        if prefix.version not in by_version:
            by_version[prefix.version] = path_attributes(peer, facts, prefix.version, graceful_shutdown)
        attrs = by_version[prefix.version]
        if attrs is not None:
            out[prefix] = attrs
    return out
