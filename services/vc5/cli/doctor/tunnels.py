"""Tunnel types as `--tunnel` names them, and the size arithmetic of docs/real-servers.md §5.

The overhead after the outer IP header comes from the data plane's own table
(vc5.xdp_loader.layout.TUNNEL_OVERHEAD), so the doctor and the balancer cannot disagree.
An encapsulated packet = outer IP header (20 IPv4, 40 IPv6) + overhead + the client's packet;
the client's TCP packet = MSS + 40 (IPv4 VIP) or + 60 (IPv6 VIP: 40 + 20 of TCP).
"""

from __future__ import annotations

from dataclasses import dataclass

from vc5.xdp_loader import layout

METHODS = {"ipip": layout.METHOD_IPIP, "gre": layout.METHOD_GRE,
           "fou": layout.METHOD_FOU, "gue": layout.METHOD_GUE}
NEEDS_PORT = ("fou", "gue")
OUTER_HEADER = {4: 20, 6: 40}
INNER_TCPIP = {4: 40, 6: 60}


@dataclass(frozen=True)
class Tunnel:
    kind: str           # ipip | gre | fou | gue
    port: int = 0       # fou/gue: the service's tunnel-port

    def __str__(self) -> str:
        return f"{self.kind}:{self.port}" if self.port else self.kind


def parse(text: str) -> Tunnel:
    """`ipip`, `gre`, `fou:PORT` or `gue:PORT`; ValueError naming the argument otherwise."""
    kind, _, port = text.strip().lower().partition(":")
    if kind not in METHODS:
        raise ValueError(f"--tunnel {text!r}: expected ipip, gre, fou:PORT or gue:PORT")
    if kind in NEEDS_PORT:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"--tunnel {text!r}: {kind} needs its UDP port (the service's tunnel-port), "
                             f"e.g. {kind}:{5555 if kind == 'fou' else 6080}")
        return Tunnel(kind, int(port))
    if port:
        raise ValueError(f"--tunnel {text!r}: {kind} takes no port")
    return Tunnel(kind)


def overhead(kind: str, outer_family: int) -> int:
    """Bytes the balancer adds in front of the client's packet."""
    return OUTER_HEADER[outer_family] + layout.TUNNEL_OVERHEAD[METHODS[kind]]


def max_mss(path_mtu: int, kind: str, outer_family: int, vip_family: int) -> int:
    """The largest MSS a backend may advertise so that encapsulated segments fit `path_mtu`."""
    return path_mtu - overhead(kind, outer_family) - INNER_TCPIP[vip_family]
