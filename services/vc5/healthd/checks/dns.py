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

Each socket is read until empty (up to DRAIN datagrams) whenever it is
readable. asyncio's datagram transport reads one datagram per wakeup, so at
5,000 checks/s replies queued in healthd's own sockets (up to 3.7 MiB) and
waited there past the 1 s timeout: the "4-13 % DNS timeouts under load" of
issue 12, every one of them answered in time by the backend
(docs/health-checks.md, "Capacity").
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

# UDP sockets per address family, used in turn: each has its own receive buffer (without
# CAP_NET_ADMIN a buffer is capped at net.core.rmem_max, 208 KiB by default).
POOL = 8
# Replies read per wakeup of one socket; the rest wait for the next loop iteration.
DRAIN = 1024
# We send no EDNS OPT record, so a reply is at most 512 bytes (RFC 1035 §2.3.4, §4.2.1);
# a longer datagram is cut there, which leaves the header we match on.
REPLY_BYTES = 512

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


def _expire(fut):
    if not fut.done():
        fut.set_result(Result(False, "Timeout"))


class DnsChecker:
    def __init__(self):
        self._socks = {}          # family -> [socket, ...]
        self._pending = {}        # (address, port, txid) -> Future[Result]
        self._turn = 0

    def _socket(self, family):
        # Synchronous on purpose: with an await in here, every probe of a start-up burst that
        # found no pool opened its own POOL sockets (1,600 for 200 probes).
        pool = self._socks.get(family)
        if pool is None:
            pool = []
            try:
                for _ in range(POOL):
                    pool.append(self._open(family))
            except OSError:
                for sock in pool:   # no half pool (at LimitNOFILE: the next probe tries again)
                    self._close(sock)
                raise
            self._socks[family] = pool
        self._turn = (self._turn + 1) % len(pool)
        return pool[self._turn]

    def _open(self, family):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            enlarge_receive_buffer(sock)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable, sock)
        except OSError:
            sock.close()
            raise
        return sock

    @staticmethod
    def _close(sock):
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()

    def _readable(self, sock):
        """Every queued reply, up to DRAIN, in one wakeup (asyncio's datagram transport reads one)."""
        for _ in range(DRAIN):
            try:
                data, addr = sock.recvfrom(REPLY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return      # an ICMP error is not tied to a probe on a shared socket: it times out
            self.received(data, addr)

    def received(self, data: bytes, addr) -> None:
        """One datagram: settles the probe it answers (address, port, id; QR set), else ignored."""
        head = parse_reply_header(data)
        if head is None or not head[1]:
            return
        fut = self._pending.get((addr[0].split("%")[0], addr[1], head[0]))
        if fut is not None and not fut.done():
            fut.set_result(Result(True, head[2]))

    async def probe(self, address: str, port: int, method: str, timeout: float) -> Result:
        if (method or "udp").lower() == "tcp":
            return await self._tcp(address, port, timeout)
        return await self._udp(address, port, timeout)

    async def _udp(self, address: str, port: int, timeout: float) -> Result:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            sock = self._socket(family)
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
            try:
                sock.sendto(query_wire(txid), (address, port))
            except (BlockingIOError, InterruptedError):
                return Result(False, "send buffer full")
            except OSError as e:
                return Result(False, describe_error(e))
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
        for pool in self._socks.values():
            for sock in pool:
                self._close(sock)
        self._socks.clear()
