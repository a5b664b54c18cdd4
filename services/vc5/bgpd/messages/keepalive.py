"""KEEPALIVE (RFC 4271 §4.4): a bare header."""

from . import header


def encode() -> bytes:
    return header.encode(header.KEEPALIVE)


def decode(body: bytes) -> None:
    """A KEEPALIVE has no body; header.parse_header already rejects any other length."""
    return None
