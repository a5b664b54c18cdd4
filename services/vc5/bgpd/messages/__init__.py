"""BGP-4 messages: one module per message type, pure encode/decode functions.

`decode(msg_type, body, four_octet, families)` turns a framed message (messages.header.frame)
into its dataclass; it raises only vc5.bgpd.errors.BgpError.
"""

from ..errors import BAD_MESSAGE_TYPE, MESSAGE_HEADER_ERROR, BgpError
from . import header, keepalive, notification, open, route_refresh, update  # noqa: A004

__all__ = ["header", "keepalive", "notification", "open", "route_refresh", "update",
           "decode", "decode_stream"]

DECODERS = {
    header.OPEN: lambda body, four, families: open.decode(body),
    header.UPDATE: update.decode,
    header.NOTIFICATION: lambda body, four, families: notification.decode(body),
    header.KEEPALIVE: lambda body, four, families: keepalive.decode(body),
    header.ROUTE_REFRESH: lambda body, four, families: route_refresh.decode(body),
}


def decode(msg_type: int, body: bytes, four_octet: bool = True, families=None):
    """`families`: the session's negotiated AFI/SAFIs (UPDATE: others are ignored, RFC 4760 §7)."""
    try:
        decoder = DECODERS[msg_type]
    except KeyError:
        raise BgpError(MESSAGE_HEADER_ERROR, BAD_MESSAGE_TYPE, f"unknown message type {msg_type}",
                       bytes([msg_type & 0xFF])) from None
    return decoder(body, four_octet, families)


def decode_stream(buf: bytes, four_octet: bool = True):
    """Decode every complete message in `buf`: ([(type, message), ...], leftover octets)."""
    out = []
    while True:
        framed = header.frame(buf)
        if framed is None:
            return out, buf
        msg_type, body, buf = framed
        out.append((msg_type, decode(msg_type, body, four_octet)))
