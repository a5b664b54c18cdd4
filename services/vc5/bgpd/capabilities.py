"""BGP capabilities (RFC 5492) that vc5-bgpd speaks, and their negotiation.

Supported: multiprotocol (RFC 4760, code 1), route refresh (RFC 2918, code 2),
graceful restart (RFC 4724, code 64), 4-octet AS numbers (RFC 6793, code 65).
Unknown capabilities are kept (code, value) and ignored, as RFC 5492 §3 allows.
"""

import struct
from dataclasses import dataclass, field

from .errors import OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER, BgpError

MULTIPROTOCOL = 1
ROUTE_REFRESH = 2
GRACEFUL_RESTART = 64
FOUR_OCTET_AS = 65

AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1
IPV4_UNICAST = (AFI_IPV4, SAFI_UNICAST)
IPV6_UNICAST = (AFI_IPV6, SAFI_UNICAST)

FAMILY_NAMES = {IPV4_UNICAST: "ipv4-unicast", IPV6_UNICAST: "ipv6-unicast"}


def family_name(family) -> str:
    return FAMILY_NAMES.get(tuple(family), f"afi{family[0]}-safi{family[1]}")


@dataclass(frozen=True)
class Capabilities:
    families: tuple = ()              # ((afi, safi), ...) from multiprotocol capabilities
    route_refresh: bool = False
    four_octet_as: int = None         # the speaker's real ASN when it has the capability
    graceful_restart: tuple = None    # (restart_time, ((afi, safi, forwarding_preserved), ...)) or None
    other: tuple = field(default=())  # ((code, value bytes), ...)

    def names(self) -> tuple:
        """Short names for logs and the D-Bus Peers property."""
        out = [f"mp:{family_name(f)}" for f in self.families]
        if self.route_refresh:
            out.append("route-refresh")
        if self.four_octet_as is not None:
            out.append("4-octet-as")
        if self.graceful_restart is not None:
            out.append("graceful-restart")
        out += [f"cap{code}" for code, _ in self.other]
        return tuple(out)


def _cap(code: int, value: bytes) -> bytes:
    return struct.pack("!BB", code, len(value)) + value


def encode(caps: Capabilities) -> bytes:
    """The value of one Capabilities optional parameter (type 2) holding every capability."""
    out = b""
    for afi, safi in caps.families:
        out += _cap(MULTIPROTOCOL, struct.pack("!HBB", afi, 0, safi))
    if caps.route_refresh:
        out += _cap(ROUTE_REFRESH, b"")
    if caps.graceful_restart is not None:
        restart_time, families = caps.graceful_restart
        value = struct.pack("!H", restart_time & 0x0FFF)
        for afi, safi, preserved in families:
            value += struct.pack("!HBB", afi, safi, 0x80 if preserved else 0)
        out += _cap(GRACEFUL_RESTART, value)
    if caps.four_octet_as is not None:
        out += _cap(FOUR_OCTET_AS, struct.pack("!I", caps.four_octet_as))
    for code, value in caps.other:
        out += _cap(code, value)
    return out


def decode(value: bytes) -> Capabilities:
    """Decode a Capabilities parameter value; malformed lengths raise BgpError 2/4... as RFC 5492."""
    families, other = [], []
    route_refresh, four, gr = False, None, None
    i = 0
    while i < len(value):
        if i + 2 > len(value):
            raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER, "truncated capability header")
        code, length = value[i], value[i + 1]
        data = value[i + 2:i + 2 + length]
        if len(data) != length:
            raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER,
                           f"capability {code} overruns its parameter")
        i += 2 + length
        if code == MULTIPROTOCOL:
            if length != 4:
                raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER,
                               f"multiprotocol capability of length {length}")
            afi, _res, safi = struct.unpack("!HBB", data)
            if (afi, safi) not in families:
                families.append((afi, safi))
        elif code == ROUTE_REFRESH:
            route_refresh = True
        elif code == FOUR_OCTET_AS:
            if length != 4:
                raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER,
                               f"4-octet AS capability of length {length}")
            four = struct.unpack("!I", data)[0]
        elif code == GRACEFUL_RESTART:
            if length < 2 or (length - 2) % 4:
                raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER,
                               f"graceful restart capability of length {length}")
            restart_time = struct.unpack("!H", data[:2])[0] & 0x0FFF
            fams = tuple((struct.unpack("!H", data[j:j + 2])[0], data[j + 2], bool(data[j + 3] & 0x80))
                         for j in range(2, length, 4))
            gr = (restart_time, fams)
        else:
            other.append((code, bytes(data)))
    return Capabilities(tuple(families), route_refresh, four, gr, tuple(other))


def merge(parts) -> Capabilities:
    """Several Capabilities parameters in one OPEN add up (RFC 5492 §4)."""
    families, other = [], []
    rr, four, gr = False, None, None
    for c in parts:
        families += [f for f in c.families if f not in families]
        rr = rr or c.route_refresh
        four = c.four_octet_as if c.four_octet_as is not None else four
        gr = c.graceful_restart if c.graceful_restart is not None else gr
        other += list(c.other)
    return Capabilities(tuple(families), rr, four, gr, tuple(other))


def negotiated_families(ours: Capabilities, theirs: Capabilities) -> tuple:
    """Families both sides carry. A peer without MP capabilities speaks IPv4 unicast only (RFC 4760 §8)."""
    their_families = theirs.families or (IPV4_UNICAST,)
    our_families = ours.families or (IPV4_UNICAST,)
    return tuple(f for f in our_families if f in their_families)
