"""TCP MD5 signatures (RFC 2385) through Linux's TCP_MD5SIG socket option.

struct tcp_md5sig (linux/tcp.h): sockaddr_storage tcpm_addr (128 octets),
u8 tcpm_flags, u8 tcpm_prefixlen, u16 tcpm_keylen, u32 tcpm_ifindex, u8 tcpm_key[80].
Set on a connecting socket before connect(), and on a listening socket once
per peer address (the key is looked up by the peer's address).
"""

import ipaddress
import socket
import struct

TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80


def _sockaddr(address) -> bytes:
    addr = ipaddress.ip_address(address)
    if addr.version == 4:
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + addr.packed + bytes(8)
    else:
        raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + addr.packed + bytes(4)
    return raw + bytes(128 - len(raw))


def tcp_md5sig(address, key: str) -> bytes:
    raw = key.encode("utf-8")
    if len(raw) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} octets")
    return _sockaddr(address) + struct.pack("=BBHI", 0, 0, len(raw), 0) + raw + bytes(80 - len(raw))


def set_key(sock: socket.socket, address, key) -> None:
    """Install (or, with key None/"", remove) the MD5 key for `address` on `sock`."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, tcp_md5sig(address, key or ""))


def peer_for_socket(sock_family: int, address):
    """The address as the socket family sees it (IPv4 peers on an AF_INET6 socket are v4-mapped)."""
    addr = ipaddress.ip_address(address)
    if sock_family == socket.AF_INET6 and addr.version == 4:
        return ipaddress.IPv6Address("::ffff:" + str(addr))
    return addr
