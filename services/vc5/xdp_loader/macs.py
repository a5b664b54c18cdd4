"""MAC addresses as the maps hold them (6 bytes) and as people read them (re-exported by layout)."""

from __future__ import annotations


def mac_bytes(mac: str | bytes) -> bytes:
    """'02:00:00:00:00:0a' (or '-' separated, or 6 raw bytes) -> 6 bytes."""
    if isinstance(mac, (bytes, bytearray)):
        raw = bytes(mac)
    else:
        parts = mac.replace("-", ":").split(":")
        if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
            raise ValueError(f"not a MAC address: {mac!r}")
        raw = bytes(int(p, 16) for p in parts)
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def mac_str(raw) -> str:
    return ":".join(f"{b:02x}" for b in bytes(raw))
