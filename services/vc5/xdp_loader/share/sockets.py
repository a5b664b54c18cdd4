"""Multicast UDP sockets for flow sharing (vc5 -m GROUP:PORT).

    parse_group("224.0.0.1:9999") -> ("224.0.0.1", 9999)   "[ff02::1]:9999" for IPv6
    sender_socket(group, port, interface=None, loop=False)
    receiver_socket(group, port, interface=None)

TTL / hop limit 1: shared flows never leave the balancers' segment. Loopback
of our own datagrams is off by default (we would only learn our own flows).
`interface` picks the NIC to send on and to join the group on; None lets the
routing table decide (vc5 does the same: Go's DialUDP / ListenMulticastUDP(nil)).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

RCVBUF = 1500 * 1000            # vc5: maxDatagramSize * 1000
SNDBUF = 1500 * 100             # vc5: maxDatagramSize * 100


def parse_group(text: str) -> tuple[str, int]:
    """GROUP:PORT (IPv6 in brackets) -> (group, port); ValueError naming the text otherwise."""
    host, sep, port = text.strip().rpartition(":")
    try:
        group = ipaddress.ip_address(host.strip("[]"))
        number = int(port)
    except ValueError:
        group, number = None, 0
    if not sep or group is None or not group.is_multicast or not 1 <= number <= 65535:
        raise ValueError(f"multicast {text!r} is not GROUP:PORT with a multicast group, e.g. 224.0.0.1:9999")
    return str(group), number


def _family(group: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(group).version == 6 else socket.AF_INET


def _mreqn(group: str, ifindex: int) -> bytes:
    # struct ip_mreqn { in_addr multiaddr; in_addr address; int ifindex; }
    return socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("@i", ifindex)


def sender_socket(group: str, port: int, interface: str | None = None, loop: bool = False) -> socket.socket:
    fam = _family(group)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        ifindex = socket.if_nametoindex(interface) if interface else 0
        if fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))
            if ifindex:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, _mreqn(group, ifindex))
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(loop))
            if ifindex:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        s.connect((group, port))
    except BaseException:
        s.close()
        raise
    return s


def receiver_socket(group: str, port: int, interface: str | None = None) -> socket.socket:
    """Bound to GROUP:PORT (only that group's datagrams), member of the group."""
    fam = _family(group)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        ifindex = socket.if_nametoindex(interface) if interface else 0
        if fam == socket.AF_INET:
            s.bind((group, port))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _mreqn(group, ifindex))
        else:
            s.bind((group, port, 0, ifindex))
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    except BaseException:
        s.close()
        raise
    return s
