"""Prefix encoding for NLRI and withdrawn routes (RFC 4271 §4.3, RFC 4760 §5).

Each prefix is a length octet followed by the fewest octets that hold it.
"""

import ipaddress

from .errors import INVALID_NETWORK_FIELD, UPDATE_MESSAGE_ERROR, BgpError

AFI_BITS = {1: 32, 2: 128}
NETWORK = {1: ipaddress.IPv4Network, 2: ipaddress.IPv6Network}


def encode_prefix(net) -> bytes:
    if not isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        net = ipaddress.ip_network(net)
    n = (net.prefixlen + 7) // 8
    return bytes([net.prefixlen]) + net.network_address.packed[:n]


def encode_prefixes(nets) -> bytes:
    return b"".join(encode_prefix(n) for n in nets)


def decode_prefixes(data: bytes, afi: int = 1) -> tuple:
    """Decode a run of prefixes; bad lengths raise UPDATE Invalid Network Field (3/10)."""
    bits = AFI_BITS.get(afi)
    if bits is None:
        raise BgpError(UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD, f"unsupported AFI {afi}")
    out = []
    i = 0
    while i < len(data):
        plen = data[i]
        if plen > bits:
            raise BgpError(UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD, f"prefix length {plen} > {bits}")
        n = (plen + 7) // 8
        raw = data[i + 1:i + 1 + n]
        if len(raw) != n:
            raise BgpError(UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD, "prefix overruns its field")
        i += 1 + n
        addr = int.from_bytes(raw + bytes(bits // 8 - n), "big")
        # host bits set past the length are ignored (RFC 4271 §4.3: trailing bits irrelevant)
        out.append(NETWORK[afi]((addr, plen), strict=False))
    return tuple(out)
