"""BFD over UDP, single hop (RFC 5881), on the asyncio loop of vc5-bgpd.

Sockets:
  * one receiving socket per address family, bound to port 3784 (§4), shared by
    every session; IP_RECVTTL / IPV6_RECVHOPLIMIT give each packet's TTL, and a
    packet whose TTL (hop limit) is not 255 is discarded (§5, GTSM: only a
    neighbour on the link can send one);
  * one sending socket per session, bound to a source port in 49152..65535
    that stays the same for the session's life (§4), with TTL 255 and connected
    to the peer's port 3784.
A received packet is given to the session named by Your Discriminator, or, when
that is 0 (the peer's Down/AdminDown), to the session of its source address
(RFC 5880 §6.8.6); anything else is counted and dropped.

Each session is driven by one timer, set to session.deadline(); `now` is the
loop's monotonic clock. State changes go to `on_change(address, transition)`.
"""

import errno
import ipaddress
import logging
import random
import socket
import struct

from . import packet
from .session import Session

log = logging.getLogger("vc5.bgpd.bfd")

PORT = 3784
SOURCE_PORTS = (49152, 65535)
TTL = 255
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)        # Linux <linux/in.h>; not exported by Python 3.11
_CMSG_SPACE = socket.CMSG_SPACE(4)
_rng = random.SystemRandom()


def plain(address):
    a = ipaddress.ip_address(address)
    return a.ipv4_mapped if a.version == 6 and a.ipv4_mapped else a


class Receiver:
    """The port-3784 socket of one address family."""

    def __init__(self, family, dispatch, loop):
        self.family = family
        self.dispatch = dispatch                      # (data, source address, ttl) -> None
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # No SO_REUSEADDR: with it two UDP sockets share the port and the kernel gives each
            # packet to one of them; another BFD daemon on this host (BIRD) must make us fail instead.
            if family == socket.AF_INET6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                self.sock.bind(("::", PORT))
            else:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                self.sock.bind(("0.0.0.0", PORT))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self):
        for _ in range(64):                          # bounded: other sessions' timers must run too
            try:
                data, anc, _flags, src = self.sock.recvmsg(512, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("BFD receive error: %s", e)
                return
            ttl = None
            for level, kind, value in anc:
                if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL),
                                     (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)) and len(value) >= 4:
                    ttl = struct.unpack("=i", value[:4])[0]
            self.dispatch(data, plain(src[0]), ttl)

    def close(self):
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def sending_socket(address, source_ip=None):
    """A UDP socket connected to address:3784 from a fixed port in 49152..65535, TTL 255."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL)
        src = str(source_ip) if source_ip is not None else ("0.0.0.0" if family == socket.AF_INET else "::")
        for _ in range(64):
            try:
                sock.bind((src, _rng.randint(*SOURCE_PORTS)))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
        else:
            raise OSError(errno.EADDRINUSE, "no free BFD source port in 49152..65535")
        sock.setblocking(False)
        sock.connect((str(address), PORT))
    except OSError:
        sock.close()
        raise
    return sock


class Runner:
    """One peer's BFD session: its socket, its timer, and its Session."""

    def __init__(self, address, params, source_ip, on_change, loop):
        self.address = address
        self.params = params
        self.on_change = on_change
        self.loop = loop
        self.counters = {"packets_in": 0, "packets_out": 0, "send_errors": 0}
        self.session = Session(_rng.randint(1, 2 ** 32 - 1), params.interval_ms * 1000, params.multiplier,
                               loop.time(), _rng.random)
        self.sock = sending_socket(address, source_ip)
        self._timer = None
        self._last_send_error = None
        self._wake()

    def receive(self, p: packet.Control):
        self.counters["packets_in"] += 1
        self._report(self.session.receive(p, self.loop.time()))
        self._wake()

    def _wake(self):
        """Expire, send what is due, and set the timer to the next deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.sock is None:
            return
        now = self.loop.time()
        self._report(self.session.expire(now))
        for _ in range(2):                    # a Final owed, then perhaps the periodic packet
            p = self.session.due_packet(now)
            if p is None:
                break
            self._send(p)
        deadline = self.session.deadline()
        if deadline != float("inf"):
            self._timer = self.loop.call_at(max(deadline, now + 0.001), self._wake)

    def _send(self, p):
        try:
            self.sock.send(p.encode())
        except OSError as e:
            self.counters["send_errors"] += 1
            if e.errno != self._last_send_error:       # log each kind of failure once in a row
                log.warning("BFD to %s: cannot send: %s", self.address, e)
            self._last_send_error = e.errno
            return
        self._last_send_error = None
        self.counters["packets_out"] += 1

    def _report(self, transition):
        if transition is not None:
            self.on_change(self.address, transition)

    def close(self, admin_down=True):
        """AdminDown to the peer (RFC 5880 §6.8.16: not a failure for its clients, RFC 5882 §3.2)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.sock is None:
            return
        if admin_down:
            self._report(self.session.admin_down(self.loop.time()))
            for _ in range(3):            # best effort: a single datagram may be lost
                self._send(self.session.packet())
        self.sock.close()
        self.sock = None
