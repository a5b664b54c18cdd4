"""The 19-octet BGP message header (RFC 4271 §4.1) and message framing.

Invariant: `frame()` either returns a complete, length-checked message or
raises BgpError with the Message Header Error the RFC prescribes (§6.1).
"""

import struct

from ..errors import (BAD_MESSAGE_LENGTH, BAD_MESSAGE_TYPE, CONNECTION_NOT_SYNCHRONIZED,
                      MESSAGE_HEADER_ERROR, BgpError)

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_LEN = 4096          # RFC 4271 §4.1 (no RFC 8654 extended messages)

OPEN = 1
UPDATE = 2
NOTIFICATION = 3
KEEPALIVE = 4
ROUTE_REFRESH = 5       # RFC 2918

TYPE_NAMES = {OPEN: "OPEN", UPDATE: "UPDATE", NOTIFICATION: "NOTIFICATION", KEEPALIVE: "KEEPALIVE",
              ROUTE_REFRESH: "ROUTE-REFRESH"}

# smallest legal total length per type (RFC 4271 §6.1, RFC 2918 §3)
MIN_LEN = {OPEN: 29, UPDATE: 23, NOTIFICATION: 21, KEEPALIVE: 19, ROUTE_REFRESH: 23}


def encode(msg_type: int, body: bytes = b"") -> bytes:
    length = HEADER_LEN + len(body)
    if length > MAX_LEN:
        raise ValueError(f"BGP message of {length} octets exceeds {MAX_LEN}")
    return MARKER + struct.pack("!HB", length, msg_type) + body


def parse_header(header: bytes):
    """(length, type) of a 19-octet header; raises BgpError 1/x when it is bad."""
    if len(header) < HEADER_LEN:
        raise BgpError(MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH, f"short header ({len(header)} octets)")
    if header[:16] != MARKER:
        raise BgpError(MESSAGE_HEADER_ERROR, CONNECTION_NOT_SYNCHRONIZED, "marker is not all ones")
    length, msg_type = struct.unpack("!HB", header[16:19])
    if msg_type not in MIN_LEN:
        raise BgpError(MESSAGE_HEADER_ERROR, BAD_MESSAGE_TYPE, f"unknown message type {msg_type}",
                       bytes([msg_type]))
    if length < MIN_LEN[msg_type] or length > MAX_LEN or (msg_type == KEEPALIVE and length != HEADER_LEN):
        raise BgpError(MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH,
                       f"{TYPE_NAMES[msg_type]} with length {length}", struct.pack("!H", length))
    return length, msg_type


def frame(buf: bytes):
    """Split one message off the front of `buf`.

    Returns (type, body, rest) or None when more octets are needed.
    """
    if len(buf) < HEADER_LEN:
        return None
    length, msg_type = parse_header(buf[:HEADER_LEN])
    if len(buf) < length:
        return None
    return msg_type, bytes(buf[HEADER_LEN:length]), bytes(buf[length:])
