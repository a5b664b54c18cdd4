"""Path attributes (RFC 4271 §4.3, §5): encode what vc5-bgpd originates, decode what peers send.

Originated routes carry, in type-code order (RFC 4271 §5 SHOULD):
ORIGIN IGP; AS_PATH (empty for iBGP, one AS_SEQUENCE [local AS] for eBGP, 4-octet
ASNs when both sides have the capability, else 2-octet with AS_TRANS and an
AS4_PATH, RFC 6793 §4.2.2); NEXT_HOP (IPv4 routes); MED when > 0; LOCAL_PREF on
iBGP only; COMMUNITIES (RFC 1997); MP_REACH_NLRI for IPv6 (RFC 4760);
LARGE_COMMUNITY (RFC 8092).
"""

import ipaddress
import struct
from dataclasses import dataclass

from . import nlri
from .errors import (ATTRIBUTE_FLAGS_ERROR, ATTRIBUTE_LENGTH_ERROR, INVALID_NEXT_HOP_ATTRIBUTE,
                     INVALID_ORIGIN_ATTRIBUTE, MALFORMED_AS_PATH, MALFORMED_ATTRIBUTE_LIST,
                     MISSING_WELL_KNOWN_ATTRIBUTE, OPTIONAL_ATTRIBUTE_ERROR,
                     UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                     UPDATE_MESSAGE_ERROR, BgpError)

OPTIONAL, TRANSITIVE, PARTIAL, EXTENDED = 0x80, 0x40, 0x20, 0x10

ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF = 1, 2, 3, 4, 5
ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES = 6, 7, 8
MP_REACH_NLRI, MP_UNREACH_NLRI, AS4_PATH, AS4_AGGREGATOR = 14, 15, 17, 18
LARGE_COMMUNITIES = 32

ORIGIN_IGP = 0
AS_SET, AS_SEQUENCE = 1, 2
AS_TRANS = 23456
GRACEFUL_SHUTDOWN = (65535, 0)   # RFC 8326 well-known community 65535:0

WELL_KNOWN = {ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF, ATOMIC_AGGREGATE}
# the flag bits (optional, transitive) each known attribute must carry (RFC 4271 §6.3)
EXPECTED_FLAGS = {ORIGIN: TRANSITIVE, AS_PATH: TRANSITIVE, NEXT_HOP: TRANSITIVE, MED: OPTIONAL,
                  LOCAL_PREF: TRANSITIVE, ATOMIC_AGGREGATE: TRANSITIVE, AGGREGATOR: OPTIONAL | TRANSITIVE,
                  COMMUNITIES: OPTIONAL | TRANSITIVE, MP_REACH_NLRI: OPTIONAL, MP_UNREACH_NLRI: OPTIONAL,
                  AS4_PATH: OPTIONAL | TRANSITIVE, AS4_AGGREGATOR: OPTIONAL | TRANSITIVE,
                  LARGE_COMMUNITIES: OPTIONAL | TRANSITIVE}


def parse_community(text) -> tuple:
    """'65000:100' -> (65000, 100); each half 0..65535 (RFC 1997)."""
    if isinstance(text, tuple):
        return text
    a, b = (int(x) for x in str(text).split(":"))
    if not (0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF):
        raise ValueError(f"community {text} out of range")
    return (a, b)


def parse_large_community(text) -> tuple:
    """'65000:1:2' -> (65000, 1, 2); each part 0..2^32-1 (RFC 8092)."""
    if isinstance(text, tuple):
        return text
    parts = tuple(int(x) for x in str(text).split(":"))
    if len(parts) != 3 or not all(0 <= p <= 0xFFFFFFFF for p in parts):
        raise ValueError(f"large community {text} is not a:b:c of 32-bit numbers")
    return parts


@dataclass(frozen=True)
class PathAttributes:
    """What vc5-bgpd attaches to an originated route (hashable: Adj-RIB-Out compares these)."""

    as_path: tuple = ()               # ASNs of one AS_SEQUENCE; () for iBGP
    next_hop: object = None           # IPv4Address or IPv6Address
    med: int = 0                      # 0 = not sent (vc5)
    local_pref: object = None         # None = not sent (eBGP)
    communities: tuple = ()           # ((asn, value), ...)
    large_communities: tuple = ()     # ((a, b, c), ...)


def attribute(flags: int, type_code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | EXTENDED, type_code, len(value)) + value
    return struct.pack("!BBB", flags & ~EXTENDED, type_code, len(value)) + value


def origin(value: int = ORIGIN_IGP) -> bytes:
    return attribute(TRANSITIVE, ORIGIN, bytes([value]))


def _segment(asns, four_octet: bool) -> bytes:
    fmt = "!%d%s" % (len(asns), "I" if four_octet else "H")
    return bytes([AS_SEQUENCE, len(asns)]) + struct.pack(fmt, *asns)


def as_path(asns, four_octet: bool) -> bytes:
    """AS_PATH; with 2-octet encoding, ASNs > 65535 become AS_TRANS (RFC 6793 §4.2.2)."""
    asns = tuple(asns)
    if not asns:
        return attribute(TRANSITIVE, AS_PATH, b"")
    if not four_octet:
        asns = tuple(a if a <= 0xFFFF else AS_TRANS for a in asns)
    return attribute(TRANSITIVE, AS_PATH, _segment(asns, four_octet))


def as4_path(asns) -> bytes:
    return attribute(OPTIONAL | TRANSITIVE, AS4_PATH, _segment(tuple(asns), True))


def next_hop(addr) -> bytes:
    return attribute(TRANSITIVE, NEXT_HOP, ipaddress.IPv4Address(addr).packed)


def med(value: int) -> bytes:
    return attribute(OPTIONAL, MED, struct.pack("!I", value))


def local_pref(value: int) -> bytes:
    return attribute(TRANSITIVE, LOCAL_PREF, struct.pack("!I", value))


def communities(values) -> bytes:
    return attribute(OPTIONAL | TRANSITIVE, COMMUNITIES,
                     b"".join(struct.pack("!HH", *parse_community(c)) for c in values))


def large_communities(values) -> bytes:
    return attribute(OPTIONAL | TRANSITIVE, LARGE_COMMUNITIES,
                     b"".join(struct.pack("!III", *parse_large_community(c)) for c in values))


def mp_reach(afi: int, safi: int, nh, prefixes) -> bytes:
    """MP_REACH_NLRI (RFC 4760 §3): next hop length + next hop, reserved octet, NLRI."""
    nh_raw = ipaddress.ip_address(nh).packed
    value = struct.pack("!HBB", afi, safi, len(nh_raw)) + nh_raw + b"\x00" + nlri.encode_prefixes(prefixes)
    return attribute(OPTIONAL, MP_REACH_NLRI, value)


def mp_unreach(afi: int, safi: int, prefixes) -> bytes:
    value = struct.pack("!HB", afi, safi) + nlri.encode_prefixes(prefixes)
    return attribute(OPTIONAL, MP_UNREACH_NLRI, value)


def encode_common(attrs: PathAttributes, four_octet: bool, ipv4_next_hop: bool) -> tuple:
    """(attributes before MP_REACH, attributes after it), in type-code order."""
    head = origin()
    two_octet_overflow = not four_octet and any(a > 0xFFFF for a in attrs.as_path)
    head += as_path(attrs.as_path, four_octet)
    if ipv4_next_hop:
        head += next_hop(attrs.next_hop)
    if attrs.med:
        head += med(attrs.med)
    if attrs.local_pref is not None:
        head += local_pref(attrs.local_pref)
    if attrs.communities:
        head += communities(attrs.communities)
    tail = b""
    if two_octet_overflow:
        tail += as4_path(attrs.as_path)
    if attrs.large_communities:
        tail += large_communities(attrs.large_communities)
    return head, tail


# ---------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Decoded:
    """The attributes of a received UPDATE that vc5-bgpd understands; others kept raw."""

    origin: object = None
    as_path: tuple = ()               # ((segment type, (asn, ...)), ...)
    next_hop: object = None
    med: object = None
    local_pref: object = None
    communities: tuple = ()
    large_communities: tuple = ()
    mp_reach: object = None           # (afi, safi, next_hop bytes, prefixes)
    mp_unreach: object = None         # (afi, safi, prefixes)
    other: tuple = ()                 # ((flags, type, value), ...)


def split(data: bytes) -> tuple:
    """Split the Path Attributes field into (flags, type, value) triples (RFC 4271 §4.3)."""
    out = []
    i = 0
    while i < len(data):
        if i + 3 > len(data):
            raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST, "truncated attribute header")
        flags, type_code = data[i], data[i + 1]
        if flags & EXTENDED:
            if i + 4 > len(data):
                raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST, "truncated attribute header")
            length = struct.unpack("!H", data[i + 2:i + 4])[0]
            start = i + 4
        else:
            length = data[i + 2]
            start = i + 3
        value = data[start:start + length]
        if len(value) != length:
            raise BgpError(UPDATE_MESSAGE_ERROR, ATTRIBUTE_LENGTH_ERROR,
                           f"attribute {type_code} length {length} overruns the UPDATE", data[i:start])
        out.append((flags, type_code, bytes(value)))
        i = start + length
    return tuple(out)


def _decode_as_path(value: bytes, four_octet: bool) -> tuple:
    width = 4 if four_octet else 2
    segments = []
    i = 0
    while i < len(value):
        if i + 2 > len(value):
            raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_AS_PATH, "truncated AS_PATH segment")
        seg_type, count = value[i], value[i + 1]
        if seg_type not in (1, 2, 3, 4) or count == 0:
            raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_AS_PATH,
                           f"AS_PATH segment type {seg_type}/{count}")
        raw = value[i + 2:i + 2 + count * width]
        if len(raw) != count * width:
            raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_AS_PATH, "AS_PATH segment overruns the attribute")
        segments.append((seg_type, struct.unpack("!%d%s" % (count, "I" if four_octet else "H"), raw)))
        i += 2 + count * width
    return tuple(segments)


def _fixed(type_code, value, size, flags):
    if len(value) != size:
        raise BgpError(UPDATE_MESSAGE_ERROR, ATTRIBUTE_LENGTH_ERROR,
                       f"attribute {type_code} of length {len(value)}, expected {size}",
                       attribute(flags, type_code, value))


def decode(data: bytes, four_octet: bool, has_nlri: bool) -> Decoded:
    """Decode and check received path attributes; errors are UPDATE Message Errors (3/x)."""
    seen = {}
    other = []
    for flags, type_code, value in split(data):
        if type_code in seen:
            raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST, f"attribute {type_code} repeated")
        raw = attribute(flags, type_code, value)
        expected = EXPECTED_FLAGS.get(type_code)
        if expected is None:
            if not flags & OPTIONAL:
                raise BgpError(UPDATE_MESSAGE_ERROR, UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                               f"unknown well-known attribute {type_code}", raw)
            other.append((flags, type_code, value))
            seen[type_code] = value
            continue
        if flags & (OPTIONAL | TRANSITIVE) != expected:
            raise BgpError(UPDATE_MESSAGE_ERROR, ATTRIBUTE_FLAGS_ERROR,
                           f"attribute {type_code} with flags {flags:#04x}", raw)
        if type_code == ORIGIN:
            _fixed(type_code, value, 1, flags)
            if value[0] > 2:
                raise BgpError(UPDATE_MESSAGE_ERROR, INVALID_ORIGIN_ATTRIBUTE, f"ORIGIN {value[0]}", raw)
            seen[type_code] = value[0]
        elif type_code in (AS_PATH, AS4_PATH):
            seen[type_code] = _decode_as_path(value, four_octet or type_code == AS4_PATH)
        elif type_code == NEXT_HOP:
            _fixed(type_code, value, 4, flags)
            nh = ipaddress.IPv4Address(value)
            if nh.is_unspecified or nh.is_multicast:
                raise BgpError(UPDATE_MESSAGE_ERROR, INVALID_NEXT_HOP_ATTRIBUTE, f"NEXT_HOP {nh}", raw)
            seen[type_code] = nh
        elif type_code in (MED, LOCAL_PREF):
            _fixed(type_code, value, 4, flags)
            seen[type_code] = struct.unpack("!I", value)[0]
        elif type_code == ATOMIC_AGGREGATE:
            _fixed(type_code, value, 0, flags)
            seen[type_code] = True
        elif type_code == AGGREGATOR:
            _fixed(type_code, value, 8 if four_octet else 6, flags)
            seen[type_code] = value
        elif type_code == AS4_AGGREGATOR:
            _fixed(type_code, value, 8, flags)
            seen[type_code] = value
        elif type_code == COMMUNITIES:
            if len(value) % 4:
                raise BgpError(UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR, "COMMUNITIES length", raw)
            seen[type_code] = tuple(struct.unpack("!HH", value[j:j + 4]) for j in range(0, len(value), 4))
        elif type_code == LARGE_COMMUNITIES:
            if len(value) % 12:
                raise BgpError(UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR, "LARGE_COMMUNITY length", raw)
            seen[type_code] = tuple(struct.unpack("!III", value[j:j + 12]) for j in range(0, len(value), 12))
        elif type_code == MP_REACH_NLRI:
            if len(value) < 5 or len(value) < 5 + value[3]:
                raise BgpError(UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR, "MP_REACH_NLRI too short", raw)
            afi, safi, nh_len = struct.unpack("!HBB", value[:4])
            nh = value[4:4 + nh_len]
            seen[type_code] = (afi, safi, nh, nlri.decode_prefixes(value[5 + nh_len:], afi))
        elif type_code == MP_UNREACH_NLRI:
            if len(value) < 3:
                raise BgpError(UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR,
                               "MP_UNREACH_NLRI too short", raw)
            afi, safi = struct.unpack("!HB", value[:3])
            seen[type_code] = (afi, safi, nlri.decode_prefixes(value[3:], afi))
    if has_nlri:
        for required in (ORIGIN, AS_PATH, NEXT_HOP):
            if required not in seen:
                raise BgpError(UPDATE_MESSAGE_ERROR, MISSING_WELL_KNOWN_ATTRIBUTE,
                               f"attribute {required} missing", bytes([required]))
    return Decoded(origin=seen.get(ORIGIN), as_path=seen.get(AS_PATH, ()), next_hop=seen.get(NEXT_HOP),
                   med=seen.get(MED), local_pref=seen.get(LOCAL_PREF), communities=seen.get(COMMUNITIES, ()),
                   large_communities=seen.get(LARGE_COMMUNITIES, ()), mp_reach=seen.get(MP_REACH_NLRI),
                   mp_unreach=seen.get(MP_UNREACH_NLRI), other=tuple(other))
