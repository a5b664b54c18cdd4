"""vc5 v0.3's flow-sharing wire format (pure: records <-> bytes).

A datagram is a run of `[u8 length][record]`; vc5 (cmd/xvs.go
multicast_send/recv) writes 116-byte records and its receiver (xvs
maps.writeFlow) takes a record only when its length is 116 and its last byte
is FLOW_VERSION (2). A record is xvs's queue entry: the 36-byte fourtuple
followed by the 80-byte `struct flow` (xvs bpf/layer3.c, v0.2.10, the data
plane of vc5 v0.3):

  off size field
    0   16 client address      } fourtuple: addresses as vc5 addr_t (IPv6 as is,
   16   16 VIP                 }   IPv4 as ::a.b.c.d = 12 zero bytes + 4),
   32    2 client port         }   ports in network order
   34    2 service port        }
   36    8 time                  the sender's ktime (ns), host order (little-endian)
   44   16 tunnel.daddr          the backend (real server)
   60   16 tunnel.saddr          the sender's address towards it (node-local)
   76    2 tunnel.dport          FOU/GUE port, host order
   78    2 tunnel.sport          FOU/GUE source port 0x8000 | (hash & 0x7fff), host order
   80    2 tunnel.vlanid         vc5's VLAN id of the backend
   82    1 tunnel.method         0 none (L2), 1 ipip, 2 gre, 3 fou, 4 gue
   83    1 tunnel.flags          0x01 no UDP checksum
   84    6 tunnel.h_dest         next hop MAC (node-local)
   90    6 tunnel.h_source       sender's MAC (node-local)
   96    1 tunnel.hints          0x80 backend not on a local VLAN
   97    5 pad
  102    2 tot_len               kernel scratch
  104    4 _interface            user-space scratch
  108    4 syn_seqn_reserved
  112    1 finrst
  113    1 era
  114    1 pad                   OUR EXTENSION: the protocol; 0 (vc5) or 6 = TCP, 17 = UDP
  115    1 version               FLOW_VERSION = 2

vc5 shares TCP flows only, so it leaves byte 114 zero; we send 6 for TCP
(read as padding by vc5) and 17 for UDP. A vc5 receiver stores a UDP record
in its TCP table: harmless unless a VIP:port has a TCP and a UDP service.

Records that do not parse are counted by reason (DecodeStats) and skipped;
nothing here raises on received bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from dataclasses import dataclass

RECORD_SIZE = 116
FLOW_VERSION = 2
MAX_DATAGRAM = 1400          # a datagram stays under this many bytes (vc5: maxDatagramSize - 100)
TCP, UDP = 6, 17
NOT_LOCAL = 0x80             # tunnel.hints: the backend is behind a gateway
NO_CHECKSUM = 0x01           # tunnel.flags: FOU/GUE over IPv4 without a UDP checksum
METHODS = ("none", "ipip", "gre", "fou", "gue")

_PORTS = struct.Struct(">HH")
_TIME = struct.Struct("<Q")
_TUNNEL = struct.Struct("<16s16sHHHBB6s6sB5xHI")      # 64 bytes
_TAIL = struct.Struct("<IBBBB")                        # 8 bytes
assert 36 + _TIME.size + _TUNNEL.size + _TAIL.size == RECORD_SIZE

# Reasons a received record is skipped (DecodeStats keys).
SHORT = "truncated"          # the length byte runs past the end of the datagram
LENGTH = "length"            # length is not 116 (0 included)
VERSION = "version"          # last byte is not FLOW_VERSION
PROTOCOL = "protocol"        # byte 114 is neither 0, 6 nor 17
FAMILY = "family"            # client and VIP of different address families
METHOD = "method"            # tunnel method above 4


@dataclass(frozen=True)
class SharedFlow:
    """One flow as balancers share it. Addresses: ipaddress objects."""

    client: ipaddress.IPv4Address | ipaddress.IPv6Address
    vip: ipaddress.IPv4Address | ipaddress.IPv6Address
    client_port: int
    port: int
    protocol: int                 # TCP or UDP
    backend: ipaddress.IPv4Address | ipaddress.IPv6Address
    time_ns: int = 0              # sender's CLOCK_MONOTONIC (ktime) of the note
    source: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    tunnel_port: int = 0
    tunnel_sport: int = 0
    vlan: int = 0
    method: int = 0
    flags: int = 0
    h_dest: bytes = bytes(6)
    h_source: bytes = bytes(6)
    hints: int = 0


class DecodeStats(Counter):
    """Received records: "ok" and one key per skip reason (SHORT, LENGTH, ...)."""

    def skipped(self) -> int:
        return sum(n for k, n in self.items() if k != "ok")


def addr16(address) -> bytes:
    """vc5 addr_t: IPv6 as is; IPv4 as ::a.b.c.d (12 zero bytes, then the 4)."""
    a = ipaddress.ip_address(address)
    return a.packed if a.version == 6 else bytes(12) + a.packed


def from16(raw: bytes):
    return ipaddress.IPv4Address(raw[12:]) if raw[:12] == bytes(12) else ipaddress.IPv6Address(raw)


def encode_record(f: SharedFlow) -> bytes:
    """The 116-byte record of one flow (vc5 layout above)."""
    if f.protocol not in (TCP, UDP):
        raise ValueError(f"protocol {f.protocol} cannot be shared (TCP or UDP only)")
    source = addr16(f.source) if f.source is not None else bytes(16)
    return b"".join((
        addr16(f.client), addr16(f.vip), _PORTS.pack(f.client_port, f.port),
        _TIME.pack(f.time_ns & 0xFFFFFFFFFFFFFFFF),
        _TUNNEL.pack(addr16(f.backend), source, f.tunnel_port, f.tunnel_sport, f.vlan, f.method, f.flags,
                     bytes(f.h_dest), bytes(f.h_source), f.hints, 0, 0),
        _TAIL.pack(0, 0, 0, f.protocol, FLOW_VERSION),
    ))


def decode_record(raw: bytes) -> SharedFlow | str:
    """The flow in one record, or the reason (a DecodeStats key) it is skipped."""
    if len(raw) != RECORD_SIZE:
        return LENGTH
    if raw[-1] != FLOW_VERSION:
        return VERSION
    proto = raw[114]
    if proto not in (0, TCP, UDP):
        return PROTOCOL
    client, vip = from16(raw[0:16]), from16(raw[16:32])
    if client.version != vip.version:
        return FAMILY
    sport, dport = _PORTS.unpack_from(raw, 32)
    (time_ns,) = _TIME.unpack_from(raw, 36)
    (daddr, saddr, tport, tsport, vlan, method, flags, h_dest, h_source, hints,
     _, _) = _TUNNEL.unpack_from(raw, 44)
    if method >= len(METHODS):
        return METHOD
    return SharedFlow(client, vip, sport, dport, proto or TCP, from16(daddr), time_ns,
                      from16(saddr) if any(saddr) else None, tport, tsport, vlan, method, flags,
                      h_dest, h_source, hints)


def frame(records) -> list[bytes]:
    """Datagrams of `[u8 116][record]` runs, each at most MAX_DATAGRAM bytes."""
    out, cur = [], bytearray()
    for rec in records:
        if len(rec) > 255:
            raise ValueError(f"a record of {len(rec)} bytes does not fit a u8 length")
        if cur and len(cur) + 1 + len(rec) > MAX_DATAGRAM:
            out.append(bytes(cur))
            cur = bytearray()
        cur.append(len(rec))
        cur += rec
    if cur:
        out.append(bytes(cur))
    return out


def unframe(data: bytes, stats: DecodeStats | None = None) -> list[SharedFlow]:
    """The flows of one datagram; every record skipped is counted in `stats` by reason.
    Framing as vc5's receiver: a zero length byte is skipped, a record running past
    the end ends the datagram."""
    stats = DecodeStats() if stats is None else stats
    flows, n = [], 0
    while n < len(data):
        length = data[n]
        start, n = n + 1, n + 1 + length
        if n > len(data):
            stats[SHORT] += 1
            break
        got = decode_record(data[start:n])
        if isinstance(got, str):
            stats[got] += 1
        else:
            stats["ok"] += 1
            flows.append(got)
    return flows


def sdbm16(tuple36: bytes) -> int:
    """vc5's 16-bit sdbm over the 36-byte fourtuple (bpf/vc5_hash.h, xvs l4_hash)."""
    h = 0
    for c in tuple36:
        h = (h * 63 + c) & 0xFFFF
    return h


def fourtuple(f: SharedFlow) -> bytes:
    """The flow table's 36-byte tuple (= the record's first 36 bytes)."""
    return addr16(f.client) + addr16(f.vip) + _PORTS.pack(f.client_port, f.port)
