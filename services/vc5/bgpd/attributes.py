"""Path attributes (RFC 4271 §4.3, §5): encode what vc5-bgpd originates, decode what peers send.

Originated routes carry, in type-code order (RFC 4271 §5 SHOULD):
ORIGIN IGP; AS_PATH (empty for iBGP, one AS_SEQUENCE [local AS] for eBGP, 4-octet
ASNs when both sides have the capability, else 2-octet with AS_TRANS and an
AS4_PATH, RFC 6793 §4.2.2); NEXT_HOP (IPv4 routes); MED when > 0; LOCAL_PREF on
iBGP only; COMMUNITIES (RFC 1997); MP_REACH_NLRI for IPv6 (RFC 4760);
LARGE_COMMUNITY (RFC 8092).

Received attributes are checked with the error handling of RFC 7606: a
malformed attribute costs at most the routes of that UPDATE ("treat-as-withdraw")
or the attribute alone ("attribute discard"); only what RFC 7606 still calls
"session reset" raises BgpError. docs/bgp.md, "Received UPDATEs", has the table.
"""

import ipaddress
import struct
from dataclasses import dataclass

from . import nlri
from .errors import (ATTRIBUTE_LENGTH_ERROR, MALFORMED_ATTRIBUTE_LIST, OPTIONAL_ATTRIBUTE_ERROR,
                     UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, UPDATE_MESSAGE_ERROR, BgpError)

OPTIONAL, TRANSITIVE, PARTIAL, EXTENDED = 0x80, 0x40, 0x20, 0x10

ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF = 1, 2, 3, 4, 5
ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES = 6, 7, 8
ORIGINATOR_ID, CLUSTER_LIST = 9, 10                     # RFC 4456
MP_REACH_NLRI, MP_UNREACH_NLRI = 14, 15
EXTENDED_COMMUNITIES, AS4_PATH, AS4_AGGREGATOR = 16, 17, 18
IPV6_EXTENDED_COMMUNITIES = 25                          # RFC 5701
LARGE_COMMUNITIES = 32

NAMES = {ORIGIN: "ORIGIN", AS_PATH: "AS_PATH", NEXT_HOP: "NEXT_HOP", MED: "MULTI_EXIT_DISC",
         LOCAL_PREF: "LOCAL_PREF", ATOMIC_AGGREGATE: "ATOMIC_AGGREGATE", AGGREGATOR: "AGGREGATOR",
         COMMUNITIES: "COMMUNITIES", ORIGINATOR_ID: "ORIGINATOR_ID", CLUSTER_LIST: "CLUSTER_LIST",
         MP_REACH_NLRI: "MP_REACH_NLRI", MP_UNREACH_NLRI: "MP_UNREACH_NLRI",
         EXTENDED_COMMUNITIES: "EXTENDED_COMMUNITIES", AS4_PATH: "AS4_PATH", AS4_AGGREGATOR: "AS4_AGGREGATOR",
         IPV6_EXTENDED_COMMUNITIES: "IPV6_EXTENDED_COMMUNITIES", LARGE_COMMUNITIES: "LARGE_COMMUNITY"}


def name(type_code: int) -> str:
    return NAMES.get(type_code, f"attribute {type_code}")


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
                  LARGE_COMMUNITIES: OPTIONAL | TRANSITIVE, ORIGINATOR_ID: OPTIONAL, CLUSTER_LIST: OPTIONAL,
                  EXTENDED_COMMUNITIES: OPTIONAL | TRANSITIVE,
                  IPV6_EXTENDED_COMMUNITIES: OPTIONAL | TRANSITIVE}


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


# ---------------------------------------------------------------- decoding (RFC 7606)

# The approaches of RFC 7606 §2 that keep the session; "session reset" is a raised BgpError.
ATTRIBUTE_DISCARD = "attribute discard"
TREAT_AS_WITHDRAW = "treat-as-withdraw"
SUPPORTED_FAMILIES = ((1, 1), (2, 1))   # what decode() parses when the session's families are not given
# MP_REACH_NLRI next hop lengths by AFI: IPv4 4 (RFC 4760 §3; 16/32 with RFC 8950),
# IPv6 16 or 32 (RFC 2545 §3)
NEXT_HOP_LENGTHS = {1: (4, 16, 32), 2: (16, 32)}


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
    errors: tuple = ()                # RFC 7606 errors that keep the session: ((approach, attr, reason), ...)
    ignored: tuple = ()               # MP_* of families not negotiated: ((attr, afi, safi), ...)

    @property
    def approach(self):
        """The strongest RFC 7606 approach among the errors (§3(h)); None when there are none."""
        found = {e[0] for e in self.errors}
        return next((a for a in (TREAT_AS_WITHDRAW, ATTRIBUTE_DISCARD) if a in found), None)


class Malformed(Exception):
    """A malformed attribute handled by "treat-as-withdraw" or "attribute discard" (RFC 7606 §2)."""

    def __init__(self, approach, reason):
        super().__init__(reason)
        self.approach, self.reason = approach, reason


class _Ignored(Exception):
    """MP_REACH_NLRI / MP_UNREACH_NLRI for an AFI/SAFI that the session did not negotiate."""

    def __init__(self, afi, safi):
        super().__init__(f"AFI {afi} SAFI {safi}")
        self.afi, self.safi = afi, safi


def _reset(subcode, reason, data=b""):
    return BgpError(UPDATE_MESSAGE_ERROR, subcode, reason, data)


def split(data: bytes) -> tuple:
    """((flags, type, value), ...) of the Path Attributes field (RFC 4271 §4.3), and the RFC 7606 §4
    error of its end, if any: (approach, attribute, reason) or None."""
    out = []
    i = 0
    while i < len(data):
        flags = data[i]
        header = 4 if flags & EXTENDED else 3
        if i + header > len(data):
            # RFC 7606 §4, second case: fewer octets left than an attribute header. Nothing (no
            # MP_REACH_NLRI either) can be hidden there: treat-as-withdraw.
            return tuple(out), (TREAT_AS_WITHDRAW, "attribute list",
                                f"{len(data) - i} octet(s) after the last attribute")
        type_code = data[i + 1]
        length = struct.unpack("!H", data[i + 2:i + 4])[0] if flags & EXTENDED else data[i + 2]
        value = data[i + header:i + header + length]
        if len(value) != length:
            if type_code in (MP_REACH_NLRI, MP_UNREACH_NLRI):
                # RFC 7606 §3(j), §5.1: the NLRI in this attribute cannot be located: session reset
                raise _reset(ATTRIBUTE_LENGTH_ERROR, f"{name(type_code)} length {length} overruns the UPDATE",
                             data[i:i + header])
            # RFC 7606 §4, first case: the last attribute overruns; the Total Attribute Length still
            # locates the NLRI and nothing can follow it: treat-as-withdraw
            return tuple(out), (TREAT_AS_WITHDRAW, name(type_code),
                                f"length {length} overruns the attribute list")
        out.append((flags, type_code, bytes(value)))
        i += header + length
    return tuple(out), None


def _decode_as_path(value: bytes, four_octet: bool, approach) -> tuple:
    """AS_PATH segments; a malformed path (RFC 7606 §7.2: unknown segment type, overrun, underrun,
    segment length 0) raises Malformed with `approach`."""
    width = 4 if four_octet else 2
    segments = []
    i = 0
    while i < len(value):
        if i + 2 > len(value):
            raise Malformed(approach, "truncated segment header")
        seg_type, count = value[i], value[i + 1]
        if seg_type not in (1, 2, 3, 4) or count == 0:
            raise Malformed(approach, f"segment type {seg_type}, length {count}")
        raw = value[i + 2:i + 2 + count * width]
        if len(raw) != count * width:
            raise Malformed(approach, "segment overruns the attribute")
        segments.append((seg_type, struct.unpack("!%d%s" % (count, "I" if four_octet else "H"), raw)))
        i += 2 + count * width
    return tuple(segments)


def _length(value, ok: bool, approach):
    if not ok:
        raise Malformed(approach, f"length {len(value)}")


def _origin(value, four_octet, families):
    _length(value, len(value) == 1, TREAT_AS_WITHDRAW)                  # RFC 7606 §7.1
    if value[0] > 2:
        raise Malformed(TREAT_AS_WITHDRAW, f"undefined value {value[0]}")
    return value[0]


def _next_hop(value, four_octet, families):
    _length(value, len(value) == 4, TREAT_AS_WITHDRAW)                  # RFC 7606 §7.3
    nh = ipaddress.IPv4Address(value)
    if nh.is_unspecified or nh.is_multicast or nh == ipaddress.IPv4Address("255.255.255.255"):
        # RFC 4271 §6.3: semantically incorrect: log, ignore the route, no NOTIFICATION
        raise Malformed(TREAT_AS_WITHDRAW, f"next hop {nh}")
    return nh


def _u32(value, four_octet, families):
    _length(value, len(value) == 4, TREAT_AS_WITHDRAW)                  # RFC 7606 §7.4 MED, §7.5 LOCAL_PREF
    return struct.unpack("!I", value)[0]


def _items(size, approach, fmt=None):
    """A list of `size`-octet items; empty or ragged is malformed."""
    def decode(value, four_octet, families):
        _length(value, len(value) > 0 and len(value) % size == 0, approach)
        if fmt is None:
            return value
        return tuple(struct.unpack(fmt, value[j:j + size]) for j in range(0, len(value), size))
    return decode


def _fixed(sizes, approach):
    def decode(value, four_octet, families):
        _length(value, len(value) in sizes(four_octet), approach)
        return value
    return decode


def _mp_family(value, attribute, families):
    if len(value) < 3:
        # RFC 7606 §5.1, §7.11: without AFI/SAFI the NLRI cannot be located: session reset (RFC 4760 §7: 3/9)
        raise _reset(OPTIONAL_ATTRIBUTE_ERROR, f"{name(attribute)} of {len(value)} octets")
    afi, safi = struct.unpack("!HB", value[:3])
    if (afi, safi) not in families:
        raise _Ignored(afi, safi)       # not negotiated: ignored (RFC 4760 §7; RFC 4760 §6 capability)
    return afi, safi


def _mp_reach(value, four_octet, families):
    afi, safi = _mp_family(value, MP_REACH_NLRI, families)
    if len(value) < 5 or len(value) < 5 + value[3] or value[3] not in NEXT_HOP_LENGTHS.get(afi, ()):
        # RFC 7606 §7.11: a next hop length inconsistent with the AFI: the NLRI cannot be reliably
        # located: session reset
        raise _reset(OPTIONAL_ATTRIBUTE_ERROR, f"MP_REACH_NLRI next hop length for AFI {afi}")
    nh_len = value[3]
    # NLRI syntax errors raise 3/10: session reset (RFC 7606 §5.3)
    return afi, safi, value[4:4 + nh_len], nlri.decode_prefixes(value[5 + nh_len:], afi)


def _mp_unreach(value, four_octet, families):
    afi, safi = _mp_family(value, MP_UNREACH_NLRI, families)
    return afi, safi, nlri.decode_prefixes(value[3:], afi)              # RFC 7606 §5.3 as above


def _as_path(value, four_octet, families):
    return _decode_as_path(value, four_octet, TREAT_AS_WITHDRAW)         # RFC 7606 §7.2


def _as4_path(value, four_octet, families):
    # RFC 6793 §6: a malformed AS4_PATH is discarded (attribute discard); it is never empty
    _length(value, len(value) > 0, ATTRIBUTE_DISCARD)
    return _decode_as_path(value, True, ATTRIBUTE_DISCARD)


def _atomic_aggregate(value, four_octet, families):
    _length(value, len(value) == 0, ATTRIBUTE_DISCARD)                  # RFC 7606 §7.6
    return True


HANDLERS = {
    ORIGIN: _origin, AS_PATH: _as_path, NEXT_HOP: _next_hop, MED: _u32, LOCAL_PREF: _u32,
    ATOMIC_AGGREGATE: _atomic_aggregate,
    AGGREGATOR: _fixed(lambda four: (8,) if four else (6,), ATTRIBUTE_DISCARD),      # RFC 7606 §7.7
    AS4_AGGREGATOR: _fixed(lambda four: (8,), ATTRIBUTE_DISCARD),                    # RFC 6793 §6
    AS4_PATH: _as4_path,
    COMMUNITIES: _items(4, TREAT_AS_WITHDRAW, "!HH"),                                # RFC 7606 §7.8
    ORIGINATOR_ID: _fixed(lambda four: (4,), TREAT_AS_WITHDRAW),                     # RFC 7606 §7.9
    CLUSTER_LIST: _items(4, TREAT_AS_WITHDRAW),                                      # RFC 7606 §7.10
    EXTENDED_COMMUNITIES: _items(8, TREAT_AS_WITHDRAW),                              # RFC 7606 §7.14
    IPV6_EXTENDED_COMMUNITIES: _items(20, TREAT_AS_WITHDRAW),                        # RFC 7606 §7.15
    LARGE_COMMUNITIES: _items(12, TREAT_AS_WITHDRAW, "!III"),                        # RFC 8092 §6
    MP_REACH_NLRI: _mp_reach, MP_UNREACH_NLRI: _mp_unreach,
}


def _one(flags, type_code, value, four_octet, families):
    """The decoded value of one known attribute; raises Malformed, _Ignored or BgpError."""
    handler = HANDLERS[type_code]
    if flags & (OPTIONAL | TRANSITIVE) != EXPECTED_FLAGS[type_code]:
        if type_code in (MP_REACH_NLRI, MP_UNREACH_NLRI):
            handler(value, four_octet, families)      # RFC 7606 §3(j): its NLRI must still parse
        # RFC 7606 §3(c): Optional/Transitive bits in conflict: treat-as-withdraw
        raise Malformed(TREAT_AS_WITHDRAW, f"flags {flags:#04x}")
    return handler(value, four_octet, families)


def decode(data: bytes, four_octet: bool, has_nlri: bool, families=None) -> Decoded:
    """Decode and check received path attributes (RFC 4271 §6.3 as revised by RFC 7606).

    `families`: the AFI/SAFIs negotiated (MP_REACH/MP_UNREACH of others are ignored). Raises
    BgpError (3/x) only for a session reset; other errors are in Decoded.errors."""
    families = SUPPORTED_FAMILIES if families is None else tuple(families)
    triples, error = split(data)
    errors, ignored = ([error] if error else []), []
    seen, other, present = {}, [], set()
    for flags, type_code, value in triples:
        if type_code in present:
            if type_code in (MP_REACH_NLRI, MP_UNREACH_NLRI):
                # RFC 7606 §3(g): MP_REACH_NLRI / MP_UNREACH_NLRI more than once: session reset
                raise _reset(MALFORMED_ATTRIBUTE_LIST, f"{name(type_code)} repeated")
            # RFC 7606 §3(g): any other attribute repeated: the first one is kept, the others discarded
            errors.append((ATTRIBUTE_DISCARD, name(type_code), "repeated"))
            continue
        present.add(type_code)
        if type_code not in HANDLERS:
            if not flags & OPTIONAL:
                # RFC 4271 §6.3 (not revised by RFC 7606): unrecognized well-known attribute
                raise _reset(UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, f"unknown well-known attribute {type_code}",
                             attribute(flags, type_code, value))
            other.append((flags, type_code, value))
            continue
        try:
            seen[type_code] = _one(flags, type_code, value, four_octet, families)
        except Malformed as e:
            errors.append((e.approach, name(type_code), e.reason))
        except _Ignored as e:
            ignored.append((name(type_code), e.afi, e.safi))
    # RFC 7606 §3(d): a missing well-known mandatory attribute: treat-as-withdraw. NLRI in
    # MP_REACH_NLRI needs ORIGIN and AS_PATH (RFC 4760 §3), the NLRI field NEXT_HOP as well.
    reach = seen.get(MP_REACH_NLRI)
    needed = (ORIGIN, AS_PATH, NEXT_HOP) if has_nlri else (ORIGIN, AS_PATH) if reach and reach[3] else ()
    missing = [name(t) for t in needed if t not in present]
    if missing:
        errors.append((TREAT_AS_WITHDRAW, ", ".join(missing), "missing"))
    return Decoded(origin=seen.get(ORIGIN), as_path=seen.get(AS_PATH, ()), next_hop=seen.get(NEXT_HOP),
                   med=seen.get(MED), local_pref=seen.get(LOCAL_PREF), communities=seen.get(COMMUNITIES, ()),
                   large_communities=seen.get(LARGE_COMMUNITIES, ()), mp_reach=reach,
                   mp_unreach=seen.get(MP_UNREACH_NLRI), other=tuple(other), errors=tuple(errors),
                   ignored=tuple(ignored))
