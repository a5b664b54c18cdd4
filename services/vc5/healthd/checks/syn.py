"""Half-open TCP checks: send a SYN from a raw socket, expect a SYN-ACK (cue:mon/syn.go).

docs/health-checks.md, "What a check is".

vc5 sends a raw SYN (window 64240, source port 61000 + seq % 4999) and passes
when a SYN-ACK with ack = seq + 1 comes back from the target's address and
ports; a RST acknowledging the SYN, or silence, fails (a RST without ACK is
dropped, RFC 9293 §3.10.7.3). We do the same for IPv4 *and* IPv6 (vc5's IPv6
SYN checks never pass). No handshake is completed: our kernel has no socket
on the source port, so it answers the SYN-ACK with a RST itself, which is what
closes the half-open connection on the backend.

One raw socket per address family serves every probe: replies are matched to
waiting probes by (peer address, peer port, our port). A classic BPF filter
on each socket passes only segments with SYN or RST set to ports 61000-65535,
so the kernel does not copy every TCP packet of the host to us. Source ports
61000-65535 lie above Linux's default ephemeral range (32768-60999), so no
real connection of this host shares them. Needs CAP_NET_RAW.
"""

import asyncio
import ctypes
import ipaddress
import os
import random
import socket
import struct

from . import Result, describe_error, enlarge_receive_buffer

PORT_BASE = 61000
# vc5 uses 61000 + seq % 4999, which overflows uint16 above 65535 and wraps to low ports; we keep to
# 61000..65535.
PORT_COUNT = 65536 - PORT_BASE
WINDOW = 64240
MSS_OPTION = b"\x02\x04\x05\xb4"          # MSS 1460 (RFC 9293 §3.2): backends see a normal SYN
FLAG_FIN, FLAG_SYN, FLAG_RST, FLAG_ACK = 0x01, 0x02, 0x04, 0x10
SO_ATTACH_FILTER = 26


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: str, dst: str, length: int) -> bytes:
    """TCP pseudo-header: RFC 9293 §3.1 (IPv4), RFC 8200 §8.1 (IPv6)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, socket.IPPROTO_TCP, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, socket.IPPROTO_TCP)


_SYN_LEN = 20 + len(MSS_OPTION)
_pseudo_cache: dict = {}


def build_syn(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    """A TCP SYN segment (no IP header) with a correct checksum."""
    pseudo = _pseudo_cache.get((src, dst))
    if pseudo is None:
        if len(_pseudo_cache) > 100_000:
            _pseudo_cache.clear()
        pseudo = _pseudo_cache[(src, dst)] = pseudo_header(src, dst, _SYN_LEN)
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (_SYN_LEN // 4) << 4, FLAG_SYN, WINDOW, 0, 0)
    seg = head + MSS_OPTION
    csum = checksum(pseudo + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def parse_tcp(segment: bytes):
    """(sport, dport, seq, ack, flags) of a TCP segment, or None if too short."""
    if len(segment) < 20:
        return None
    sport, dport, seq, ack, _off, flags = struct.unpack("!HHIIBB", segment[:14])
    return sport, dport, seq, ack, flags


def strip_ipv4(packet: bytes):
    """(source address, TCP segment) of an IPv4 packet as a raw IPv4 socket delivers it."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None, b""
    ihl = (packet[0] & 0x0F) * 4
    return socket.inet_ntop(socket.AF_INET, packet[12:16]), packet[ihl:]


def verdict(flags: int, ack: int, seq: int):
    """Result of a reply to our SYN with sequence `seq`, or None if it is not an answer."""
    if flags & FLAG_SYN and flags & FLAG_ACK:
        if ack == (seq + 1) & 0xFFFFFFFF:
            return Result(True, "OK")
        return None
    if flags & FLAG_RST:
        # RFC 9293 §3.10.7.3 (SYN-SENT), "second, check the RST bit": if the ACK was
        # acceptable (it acknowledges our SYN) the connection is refused; "otherwise (no
        # ACK), drop the segment and return" - a RST without ACK (forged, or a stray from an
        # old connection) is ignored and the probe keeps waiting for its SYN-ACK.
        if flags & FLAG_ACK and ack == (seq + 1) & 0xFFFFFFFF:
            return Result(False, "Connection refused")
    return None


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def bpf_program(ipv4: bool):
    """Classic BPF: accept TCP segments with SYN or RST to ports PORT_BASE.. PORT_BASE+PORT_COUNT-1.

    IPv4 raw sockets see the IP header first (offset = IHL*4); IPv6 raw sockets
    see the TCP segment only.
    """
    LD_H_IND, LD_B_IND, LDX_MSH = 0x48, 0x50, 0xB1
    JGE, JGT, JSET, RET, LDX_IMM = 0x35, 0x25, 0x45, 0x06, 0x01
    prog = []
    if ipv4:
        prog.append((LDX_MSH, 0, 0, 0))          # X = 4 * (ip[0] & 0xf)
    else:
        prog.append((LDX_IMM, 0, 0, 0))          # X = 0
    prog += [
        (LD_H_IND, 0, 0, 2),                     # A = tcp.dport
        (JGE, 0, 4, PORT_BASE),                  # < base -> drop
        (JGT, 3, 0, PORT_BASE + PORT_COUNT - 1),  # > last -> drop
        (LD_B_IND, 0, 0, 13),                    # A = tcp.flags
        (JSET, 0, 1, FLAG_SYN | FLAG_RST),       # neither -> drop
        (RET, 0, 0, 0xFFFF),
        (RET, 0, 0, 0),
    ]
    return prog


def attach_filter(sock: socket.socket, prog) -> None:
    arr = (_SockFilter * len(prog))(*[_SockFilter(*i) for i in prog])
    fprog = _SockFprog(len(prog), arr)
    # The kernel copies the program during setsockopt (sk_attach_filter); `arr` may go after it.
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog)))


def _expire(fut):
    if not fut.done():
        fut.set_result(Result(False, "Timeout"))


class SynChecker:
    """Runs SYN checks over one raw socket per address family."""

    def __init__(self):
        self._socks = {}          # family -> socket
        self._pending = {}        # (peer addr, peer port, our port) -> (future, seq)
        self._sources = {}        # peer addr -> our source address towards it
        self._canonical = {}      # address as given -> canonical text (as replies are matched)
        self._next_port = int.from_bytes(os.urandom(2), "big") % PORT_COUNT

    def _socket(self, family):
        s = self._socks.get(family)
        if s is None:
            s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
            s.setblocking(False)
            enlarge_receive_buffer(s)
            try:
                attach_filter(s, bpf_program(family == socket.AF_INET))
            except OSError:
                pass     # the filter saves work; it is not needed for correctness
            asyncio.get_running_loop().add_reader(s.fileno(), self._readable, family)
            self._socks[family] = s
        return s

    def _source_for(self, addr: str, family) -> str:
        """The address the kernel would send from towards `addr` (a UDP connect sends nothing)."""
        src = self._sources.get(addr)
        if src is None:
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                u.connect((addr, 9))
                src = u.getsockname()[0]
            if len(self._sources) > 100_000:
                self._sources.clear()
            self._sources[addr] = src
        return src

    def _port(self, addr: str, dport: int) -> int:
        for _ in range(PORT_COUNT):
            self._next_port = (self._next_port + 1) % PORT_COUNT
            p = PORT_BASE + self._next_port
            if (addr, dport, p) not in self._pending:
                return p
        raise RuntimeError("no free SYN source port")

    def _readable(self, family):
        s = self._socks[family]
        for _ in range(256):
            try:
                data, peer = s.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.received(family, data, peer)

    def received(self, family, data: bytes, peer) -> None:
        """One packet from the raw socket: settle the probe it answers, if any."""
        if family == socket.AF_INET:
            src, seg = strip_ipv4(data)
        else:
            src, seg = peer[0].split("%")[0], data      # inet_ntop text: canonical
        if src is None:
            return
        t = parse_tcp(seg)
        if t is None:
            return
        sport, dport, _seq, ack, flags = t
        waiting = self._pending.get((src, sport, dport))
        if waiting is None:
            return
        fut, seq = waiting
        r = verdict(flags, ack, seq)
        if r is not None and not fut.done():
            fut.set_result(r)

    async def probe(self, address: str, port: int, timeout: float) -> Result:
        addr = self._canonical.get(address)
        if addr is None:
            if len(self._canonical) > 100_000:
                self._canonical.clear()
            addr = self._canonical[address] = str(ipaddress.ip_address(address))
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        try:
            sock = self._socket(family)
            src = self._source_for(addr, family)
        except OSError as e:
            return Result(False, describe_error(e))
        sport = self._port(addr, port)
        seq = random.getrandbits(32)      # not a secret: it only pairs replies with probes
        key = (addr, port, sport)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[key] = (fut, seq)
        # A timer instead of asyncio.wait_for: cheaper per probe, and cannot swallow a cancel.
        timer = loop.call_later(timeout, _expire, fut)
        try:
            try:
                sock.sendto(build_syn(src, addr, sport, port, seq), (addr, 0))
            except OSError as e:
                return Result(False, describe_error(e))
            return await fut
        finally:
            timer.cancel()
            del self._pending[key]

    async def close(self):
        loop = asyncio.get_running_loop()
        for s in self._socks.values():
            loop.remove_reader(s.fileno())
            s.close()
        self._socks.clear()
