"""UPDATE (RFC 4271 §4.3): withdrawn routes, path attributes, NLRI.

`encode` lays out one message; `announce` and `withdraw` build as many
messages as the prefixes need, each within the 4096-octet limit: IPv4 in the
classic fields, other families in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760).
"""

import struct
from dataclasses import dataclass

from .. import attributes as attr
from .. import nlri
from ..capabilities import AFI_IPV4, AFI_IPV6, SAFI_UNICAST
from ..errors import MALFORMED_ATTRIBUTE_LIST, UPDATE_MESSAGE_ERROR, BgpError
from . import header

BODY_MAX = header.MAX_LEN - header.HEADER_LEN


@dataclass(frozen=True)
class Update:
    withdrawn: tuple            # IPv4 networks
    attributes: attr.Decoded
    nlri: tuple                 # IPv4 networks

    @property
    def is_end_of_rib(self) -> bool:
        """RFC 4724 §2: an empty UPDATE (IPv4) or one with an empty MP_UNREACH_NLRI."""
        a = self.attributes
        if self.withdrawn or self.nlri or a.mp_reach is not None:
            return False
        return a.mp_unreach is None or not a.mp_unreach[2]

    @property
    def approach(self):
        """RFC 7606: "treat-as-withdraw", "attribute discard" or None (nothing malformed)."""
        return self.attributes.approach


def encode(withdrawn=(), attributes: bytes = b"", nlri_prefixes=()) -> bytes:
    w = nlri.encode_prefixes(withdrawn)
    body = struct.pack("!H", len(w)) + w + struct.pack("!H", len(attributes)) + attributes
    return header.encode(header.UPDATE, body + nlri.encode_prefixes(nlri_prefixes))


def end_of_rib(afi: int = AFI_IPV4, safi: int = SAFI_UNICAST) -> bytes:
    if afi == AFI_IPV4:
        return encode()
    return encode(attributes=attr.mp_unreach(afi, safi, ()))


def _chunks(prefixes, room: int):
    """Split prefixes into runs whose encoding fits in `room` octets."""
    run, size = [], 0
    for p in prefixes:
        n = 1 + (p.prefixlen + 7) // 8
        if run and size + n > room:
            yield run
            run, size = [], 0
        run.append(p)
        size += n
    if run:
        yield run


def announce(prefixes, attrs: attr.PathAttributes, four_octet: bool) -> list:
    """UPDATEs announcing `prefixes` (all one family) with `attrs`."""
    prefixes = sorted(prefixes)
    if not prefixes:
        return []
    ipv4 = prefixes[0].version == 4
    head, tail = attr.encode_common(attrs, four_octet, ipv4_next_hop=ipv4)
    out = []
    if ipv4:
        room = BODY_MAX - 4 - len(head) - len(tail)
        for run in _chunks(prefixes, room):
            out.append(encode((), head + tail, run))
    else:
        # MP_REACH_NLRI: extended-length header (4) + afi/safi/nh len (4) + next hop (16) + reserved (1)
        room = BODY_MAX - 4 - len(head) - len(tail) - 4 - 4 - 16 - 1
        for run in _chunks(prefixes, room):
            out.append(encode((), head + attr.mp_reach(AFI_IPV6, SAFI_UNICAST, attrs.next_hop, run) + tail))
    return out


def withdraw(prefixes) -> list:
    """UPDATEs withdrawing `prefixes` (any mix of families)."""
    v4 = sorted(p for p in prefixes if p.version == 4)
    v6 = sorted(p for p in prefixes if p.version == 6)
    out = [encode(run) for run in _chunks(v4, BODY_MAX - 4)]
    out += [encode(attributes=attr.mp_unreach(AFI_IPV6, SAFI_UNICAST, run))
            for run in _chunks(v6, BODY_MAX - 4 - 4 - 3)]
    return out


def decode(body: bytes, four_octet: bool = True, families=None) -> Update:
    """Raises BgpError only where RFC 7606 keeps "session reset": the withdrawn routes or attribute
    lengths overrun the message (§3(b)), NLRI syntax (§5.3), and what attributes.decode raises.
    `families`: the negotiated AFI/SAFIs (attributes.decode)."""
    if len(body) < 4:
        raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST, f"UPDATE body of {len(body)} octets")
    wlen = struct.unpack("!H", body[:2])[0]
    if 2 + wlen + 2 > len(body):
        raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST,
                       f"withdrawn routes length {wlen} overruns the UPDATE")
    withdrawn = nlri.decode_prefixes(body[2:2 + wlen], AFI_IPV4)
    i = 2 + wlen
    alen = struct.unpack("!H", body[i:i + 2])[0]
    if i + 2 + alen > len(body):
        raise BgpError(UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST,
                       f"total path attribute length {alen} overruns the UPDATE")
    raw_attrs = body[i + 2:i + 2 + alen]
    prefixes = nlri.decode_prefixes(body[i + 2 + alen:], AFI_IPV4)
    decoded = attr.decode(raw_attrs, four_octet, has_nlri=bool(prefixes), families=families)
    return Update(withdrawn, decoded, prefixes)
