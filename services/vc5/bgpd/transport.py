"""The TCP side of a session: the connection object and the active open.

RFC 4271 §8: one TCP connection per attempt; a Connection carries a number so
that events from an earlier connection can be told apart (session.py ignores
them). TCP MD5 (RFC 2385) keys and the source address are set before connect.
"""

import asyncio
import ipaddress
import socket

from . import md5

CONNECT_TIMEOUT = 10.0    # vc5: connect timeout 10 s


class Connection:
    """One TCP connection of a session, numbered; `local` is our address on it."""

    def __init__(self, number, reader, writer):
        self.number = number
        self.reader = reader
        self.writer = writer
        sockname = writer.get_extra_info("sockname")
        peername = writer.get_extra_info("peername")
        self.local = ipaddress.ip_address(sockname[0].split("%")[0]) if sockname else None
        self.remote = ipaddress.ip_address(peername[0].split("%")[0]) if peername else None
        if self.local is not None and self.local.version == 6 and self.local.ipv4_mapped:
            self.local = self.local.ipv4_mapped
        self.task = None

    def close(self):
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        try:
            self.writer.close()       # the transport flushes what is buffered, then closes
        except Exception:  # noqa: BLE001 - already gone
            pass


def wrap(number, reader, writer):
    """A Connection for an open stream; Nagle off (KEEPALIVEs and UPDATEs go out at once)."""
    conn = Connection(number, reader, writer)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return conn


async def connect(peer):
    """Open TCP to `peer` (MD5 key and source address first); (reader, writer). OSError or
    asyncio.TimeoutError on failure (the socket is closed; also when cancelled)."""
    family = socket.AF_INET if peer.address.version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if peer.md5:
            md5.set_key(sock, peer.address, peer.md5)
        if peer.source_ip is not None:
            sock.bind((str(peer.source_ip), 0))
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (str(peer.address), peer.port)), CONNECT_TIMEOUT)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
