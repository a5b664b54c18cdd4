"""dns checks over UDP or TCP (cue:mon/dns.go; docs/health-checks.md).

vc5 sends `localhost. IN A` (flags 0x0120: RD and AD) and passes on any reply
carrying the query's transaction id, whatever its RCODE. The default timeout
is vc5's 1 s.

The query is built by dnspython. Over TCP dnspython's asyncquery does the
exchange (length-prefixed, RFC 1035 §4.2.2). Over UDP, to check thousands of
backends per second on one core, a small pool of datagram sockets per
address family (each with its own receive buffer) serves every probe: the
query's wire form is rendered once and only its transaction id changes;
replies are matched to waiting probes by (source address, source port,
transaction id) and must have QR set (RFC 1035 §4.1.1).
A reply with another id, or from another address or port, is ignored, as a
stray datagram is by vc5.
"""

import asyncio
import random
import socket
import struct

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from . import Result, describe_error, enlarge_receive_buffer

# UDP sockets per address family, used in turn: each has its own receive buffer.
POOL = 8

QNAME = "localhost."


def make_query() -> dns.message.Message:
    q = dns.message.make_query(QNAME, "A")
    q.flags |= dns.flags.AD          # vc5's 0x0120 = RD | AD
    return q


_QUERY_WIRE = make_query().to_wire()   # id bytes [0:2] are replaced per probe


def query_wire(txid: int) -> bytes:
    return struct.pack("!H", txid) + _QUERY_WIRE[2:]


def parse_reply_header(data: bytes):
    """(txid, is_response, rcode text) of a DNS message, or None if shorter than a header."""
    if len(data) < 12:
        return None
    txid, flags = struct.unpack("!HH", data[:4])
    return txid, bool(flags & 0x8000), dns.rcode.to_text(flags & 0x000F)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, pending):
        self.pending = pending

    def datagram_received(self, data, addr):
        head = parse_reply_header(data)
        if head is None or not head[1]:
            return
        fut = self.pending.get((addr[0].split("%")[0], addr[1], head[0]))
        if fut is not None and not fut.done():
            fut.set_result(Result(True, head[2]))

    def error_received(self, exc):
        pass    # ICMP errors are not tied to a probe on a shared socket: the probe times out


def _expire(fut):
    if not fut.done():
        fut.set_result(Result(False, "Timeout"))


class DnsChecker:
    def __init__(self):
        self._transports = {}     # family -> [DatagramTransport, ...]
        self._pending = {}        # (address, port, txid) -> Future[Result]
        self._turn = 0

    async def _transport(self, family):
        pool = self._transports.get(family)
        if pool is None:
            loop = asyncio.get_running_loop()
            pool = []
            try:
                for _ in range(POOL):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
                    enlarge_receive_buffer(sock)
                    t, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self._pending), sock=sock)
                    pool.append(t)
            except OSError:
                for t in pool:      # no half pool (at LimitNOFILE: the next probe tries again)
                    t.close()
                raise
            self._transports[family] = pool
        self._turn = (self._turn + 1) % len(pool)
        return pool[self._turn]

    async def probe(self, address: str, port: int, method: str, timeout: float) -> Result:
        if (method or "udp").lower() == "tcp":
            return await self._tcp(address, port, timeout)
        return await self._udp(address, port, timeout)

    async def _udp(self, address: str, port: int, timeout: float) -> Result:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            transport = await self._transport(family)
        except OSError as e:
            return Result(False, describe_error(e))
        txid = random.getrandbits(16)
        while (address, port, txid) in self._pending:
            txid = random.getrandbits(16)
        key = (address, port, txid)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[key] = fut
        timer = loop.call_later(timeout, _expire, fut)
        try:
            transport.sendto(query_wire(txid), (address, port))
            return await fut
        finally:
            timer.cancel()
            del self._pending[key]

    async def _tcp(self, address: str, port: int, timeout: float) -> Result:
        q = make_query()
        try:
            r = await dns.asyncquery.tcp(q, address, timeout=timeout, port=port)
        except asyncio.CancelledError:
            raise
        except dns.exception.Timeout:
            return Result(False, "Timeout")
        except Exception as e:
            return Result(False, describe_error(e))
        if r.id != q.id:      # dnspython already checks; kept as the stated invariant
            return Result(False, f"transaction id {r.id} != {q.id}")
        return Result(True, dns.rcode.to_text(r.rcode()))

    async def close(self):
        for pool in self._transports.values():
            for t in pool:
                t.close()
        self._transports.clear()
