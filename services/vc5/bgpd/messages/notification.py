"""NOTIFICATION (RFC 4271 §4.5), with the shutdown communication of RFC 9003.

A Cease with subcode Administrative Shutdown (2) or Administrative Reset (4)
may carry a length-prefixed UTF-8 reason of up to 255 octets (RFC 9003 §2,
which raised RFC 8203's limit of 128).
"""

import struct
from dataclasses import dataclass

from ..errors import ADMINISTRATIVE_RESET, ADMINISTRATIVE_SHUTDOWN, CEASE, describe
from . import header

SHUTDOWN_COMMUNICATION_MAX = 255


@dataclass(frozen=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""

    @property
    def shutdown_communication(self):
        """The RFC 9003 reason, or None when absent or malformed."""
        if self.code != CEASE or self.subcode not in (ADMINISTRATIVE_SHUTDOWN, ADMINISTRATIVE_RESET):
            return None
        if not self.data or self.data[0] == 0 or len(self.data) < 1 + self.data[0]:
            return None
        try:
            return self.data[1:1 + self.data[0]].decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def text(self) -> str:
        """Readable, e.g. 'Cease / Administrative Shutdown (6/2): "maintenance"'."""
        out = f"{describe(self.code, self.subcode)} ({self.code}/{self.subcode})"
        reason = self.shutdown_communication
        if reason is not None:
            out += f': "{reason}"'
        elif self.data:
            out += f" data {self.data.hex()}"
        return out


def shutdown_data(reason: str) -> bytes:
    """RFC 9003 §2 payload: length octet + UTF-8, truncated on a character boundary."""
    raw = reason.encode("utf-8")
    while len(raw) > SHUTDOWN_COMMUNICATION_MAX:
        reason = reason[:-1]
        raw = reason.encode("utf-8")
    return bytes([len(raw)]) + raw if raw else b""


def encode(code: int, subcode: int, data: bytes = b"") -> bytes:
    return header.encode(header.NOTIFICATION, struct.pack("!BB", code, subcode) + bytes(data))


def decode(body: bytes) -> Notification:
    # header.parse_header guarantees at least 2 octets (minimum length 21)
    return Notification(body[0], body[1], bytes(body[2:]))
