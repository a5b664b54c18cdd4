"""What a session agrees with its peer: our capabilities and the check of the peer's OPEN.

Pure functions of the configuration and the received OPEN (RFC 4271 §6.2,
RFC 5492 capabilities); the session (session.py) acts on the result. See
docs/bgp.md, "Sessions".
"""

import ipaddress
from dataclasses import dataclass

from . import capabilities as caps_mod
from . import policy
from .capabilities import Capabilities
from .errors import BAD_BGP_IDENTIFIER, BAD_PEER_AS, OPEN_MESSAGE_ERROR, UNACCEPTABLE_HOLD_TIME, BgpError

MIN_HOLD = 3              # RFC 4271 §4.2: a peer's hold time of 1 or 2 is refused; vc5 also refuses 0


@dataclass(frozen=True)
class Local:
    """Settings of our side that every session shares."""

    asn: int
    router_id: ipaddress.IPv4Address
    graceful_restart: bool = False
    restart_time: int = 120


@dataclass(frozen=True)
class Negotiated:
    """What both OPENs agreed (RFC 4271 §4.2 hold time, RFC 5492 capabilities)."""

    hold_time: int
    keepalive: float
    remote_asn: int
    remote_id: ipaddress.IPv4Address
    four_octet: bool
    families: tuple
    route_refresh: bool
    capabilities: Capabilities


def our_capabilities(peer, local: Local) -> Capabilities:
    families = policy.offered_families(peer)
    gr = None
    if local.graceful_restart:
        # F bit set: the XDP data plane keeps forwarding while bgpd restarts (RFC 4724 §3)
        gr = (local.restart_time, tuple((afi, safi, True) for afi, safi in families))
    return Capabilities(families=families, route_refresh=True, four_octet_as=peer.as_number or local.asn,
                        graceful_restart=gr)


def check_open(msg, peer, local: Local, ours: Capabilities) -> Negotiated:
    """Validate a peer's OPEN against our configuration (RFC 4271 §6.2); returns what was negotiated."""
    if peer.peer_as is not None and msg.asn != peer.peer_as:
        raise BgpError(OPEN_MESSAGE_ERROR, BAD_PEER_AS, f"peer says AS {msg.asn}, configured {peer.peer_as}",
                       msg.my_as.to_bytes(2, "big"))
    if int(msg.bgp_id) == 0 or msg.bgp_id == local.router_id:
        raise BgpError(OPEN_MESSAGE_ERROR, BAD_BGP_IDENTIFIER, f"BGP identifier {msg.bgp_id}",
                       msg.bgp_id.packed)
    if msg.hold_time < MIN_HOLD:
        raise BgpError(OPEN_MESSAGE_ERROR, UNACCEPTABLE_HOLD_TIME, f"hold time {msg.hold_time} < {MIN_HOLD}")
    hold = min(peer.hold_time, msg.hold_time)
    theirs = msg.capabilities
    return Negotiated(hold_time=hold, keepalive=hold / 3, remote_asn=msg.asn, remote_id=msg.bgp_id,
                      four_octet=theirs.four_octet_as is not None and ours.four_octet_as is not None,
                      families=caps_mod.negotiated_families(ours, theirs),
                      route_refresh=theirs.route_refresh, capabilities=theirs)


def collision_keeps_new(local_id, remote_id, existing_outgoing: bool, new_outgoing: bool) -> bool:
    """RFC 4271 §6.8: of two connections with the same peer, keep the one initiated by the speaker
    with the higher BGP Identifier (compared as unsigned 32-bit integers); True to keep the new one.

    Two connections initiated by the same side are no collision in the RFC's sense: the newer one is
    kept (the side that opened both has given up the first)."""
    if existing_outgoing == new_outgoing:
        return True
    local_higher = int(ipaddress.IPv4Address(local_id)) > int(ipaddress.IPv4Address(remote_id))
    return new_outgoing == local_higher
