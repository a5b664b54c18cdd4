"""ROUTE-REFRESH (RFC 2918 §3): AFI, reserved, SAFI."""

import struct
from dataclasses import dataclass

from ..errors import BAD_MESSAGE_LENGTH, MESSAGE_HEADER_ERROR, BgpError
from . import header


@dataclass(frozen=True)
class RouteRefresh:
    afi: int
    safi: int


def encode(afi: int, safi: int) -> bytes:
    return header.encode(header.ROUTE_REFRESH, struct.pack("!HBB", afi, 0, safi))


def decode(body: bytes) -> RouteRefresh:
    if len(body) != 4:
        # RFC 2918 predates RFC 7313's code 7; a wrong length is a header error.
        raise BgpError(MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH, f"ROUTE-REFRESH body of {len(body)} octets",
                       struct.pack("!H", len(body) + header.HEADER_LEN))
    afi, _reserved, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi)
