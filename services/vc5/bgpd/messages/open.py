"""OPEN (RFC 4271 §4.2) with capabilities as optional parameters (RFC 5492).

My Autonomous System is 2 octets: a speaker whose ASN exceeds 65535 puts
AS_TRANS (23456) there and its real ASN in the 4-octet AS capability (RFC 6793 §4.1).
Checks that need the local configuration (peer AS, BGP identifier, hold time)
are in negotiation.check_open; this module validates syntax only.
"""

import ipaddress
import struct
from dataclasses import dataclass

from .. import capabilities as caps_mod
from ..capabilities import Capabilities
from ..errors import (OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER, UNSUPPORTED_VERSION, BgpError)
from . import header

VERSION = 4
AS_TRANS = 23456
CAPABILITIES_PARAM = 2


@dataclass(frozen=True)
class Open:
    version: int
    my_as: int                        # the 2-octet field as sent
    hold_time: int
    bgp_id: ipaddress.IPv4Address
    capabilities: Capabilities

    @property
    def asn(self) -> int:
        """The speaker's real ASN (RFC 6793: the capability wins over My AS)."""
        if self.capabilities.four_octet_as is not None:
            return self.capabilities.four_octet_as
        return self.my_as


def encode(asn: int, hold_time: int, bgp_id, caps: Capabilities) -> bytes:
    my_as = asn if asn <= 0xFFFF else AS_TRANS
    params = b""
    value = caps_mod.encode(caps)
    if value:
        params = struct.pack("!BB", CAPABILITIES_PARAM, len(value)) + value
    body = struct.pack("!BHH4sB", VERSION, my_as, hold_time, ipaddress.IPv4Address(bgp_id).packed,
                       len(params)) + params
    return header.encode(header.OPEN, body)


def decode(body: bytes) -> Open:
    if len(body) < 10:
        raise BgpError(OPEN_MESSAGE_ERROR, 0, f"OPEN body of {len(body)} octets")
    version, my_as, hold_time, bgp_id, params_len = struct.unpack("!BHH4sB", body[:10])
    if version != VERSION:
        # RFC 4271 §6.2: data = the largest version we support
        raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_VERSION, f"version {version}",
                       struct.pack("!H", VERSION))
    params = body[10:]
    if len(params) != params_len:
        raise BgpError(OPEN_MESSAGE_ERROR, 0,
                       f"optional parameters length {params_len} but {len(params)} octets follow")
    parts = []
    i = 0
    while i < len(params):
        if i + 2 > len(params):
            raise BgpError(OPEN_MESSAGE_ERROR, 0, "truncated optional parameter")
        ptype, plen = params[i], params[i + 1]
        value = params[i + 2:i + 2 + plen]
        if len(value) != plen:
            raise BgpError(OPEN_MESSAGE_ERROR, 0, f"optional parameter {ptype} overruns the OPEN")
        i += 2 + plen
        if ptype != CAPABILITIES_PARAM:
            raise BgpError(OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER,
                           f"unsupported optional parameter type {ptype}")
        parts.append(caps_mod.decode(value))
    return Open(version, my_as, hold_time, ipaddress.IPv4Address(bgp_id), caps_mod.merge(parts))
