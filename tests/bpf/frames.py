"""Frame builders (scapy) and an independent model of vc5's backend choice
for the BPF_PROG_TEST_RUN tests."""

from __future__ import annotations

import ctypes as ct
import ipaddress

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from vc5 import maglev
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import BackendSpec

CLIENT_MAC = "02:00:00:00:00:c1"   # the router in front of the balancer
LB_MAC = "02:00:00:00:00:1b"       # the balancer's NIC
CLIENT4 = "198.51.100.7"
CLIENT6 = "2001:db8:c::7"


def be_mac(i: int) -> str:
    return f"02:00:00:00:01:{i:02x}"


def backends(prefix: str, n: int, **kw) -> list[BackendSpec]:
    """n backends prefix+1 .. prefix+n (e.g. '10.1.0.' or 'fd00:1::'), MACs be_mac(i)."""
    return [BackendSpec(f"{prefix}{i}", mac=be_mac(i), src_mac=LB_MAC, **kw) for i in range(1, n + 1)]


def ether(vlan: int | None = None):
    e = Ether(src=CLIENT_MAC, dst=LB_MAC)
    return e / Dot1Q(vlan=vlan) if vlan is not None else e


def ip(src: str, dst: str, **kw):
    if ipaddress.ip_address(dst).version == 6:
        if "ttl" in kw:
            kw["hlim"] = kw.pop("ttl")
        return IPv6(src=src, dst=dst, **kw)
    return IP(src=src, dst=dst, **kw)


def wire(pkt):
    """The packet as received: dissected from its bytes (all checksums set)."""
    return Ether(bytes(pkt))


def tcp(vip: str, dport: int = 80, src: str | None = None, sport: int = 40000, flags: str = "A",
        vlan: int | None = None, payload: bytes = b"hello", **ipkw):
    src = src or (CLIENT6 if ":" in vip else CLIENT4)
    return ether(vlan) / ip(src, vip, **ipkw) / TCP(sport=sport, dport=dport, flags=flags, seq=1000) / payload


def udp(vip: str, dport: int = 53, src: str | None = None, sport: int = 40000, vlan: int | None = None,
        payload: bytes = b"query", **ipkw):
    src = src or (CLIENT6 if ":" in vip else CLIENT4)
    return ether(vlan) / ip(src, vip, **ipkw) / UDP(sport=sport, dport=dport) / payload


def icmp4(vip: str, src: str = CLIENT4, **kw):
    return ether() / IP(src=src, dst=vip) / ICMP(**kw) / b"ping-payload"


def sdbm16(data: bytes) -> int:
    """vc5 xvs bpf/new.h sdbm, literally: hash = c + (hash<<6) + (hash<<16) - hash."""
    h = 0
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & 0xFFFFFFFFFFFFFFFF
    return h & 0xFFFF


def tuple36(src: str, dst: str, sport: int, dport: int) -> bytes:
    """vc5 fourtuple: saddr[16], daddr[16] (IPv4 after 12 zero bytes), ports network order."""
    return (bytes(layout.addr16(src).b) + bytes(layout.addr16(dst).b)
            + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


def vc5_choice(usable: list[str], src: str, dst: str, sport: int, dport: int, sticky: bool = False) -> str:
    """The backend vc5 picks for this 4-tuple among the usable backends."""
    ordered, table = maglev.backend_table(usable)
    t = tuple36(src, dst, sport, dport)
    h = sdbm16(t[:32] if sticky else t)
    return str(ordered[table[h & 0x1FFF]])


def dsr_expected(pkt, backend: BackendSpec) -> bytes:
    """What L2 DSR must emit: MACs rewritten, TTL/hop limit 1, checksum recomputed."""
    out = pkt.copy()
    out[Ether].dst = backend.mac
    out[Ether].src = backend.src_mac
    if IP in out:
        out[IP].ttl = 1
        out[IP].chksum = None
    else:
        out[IPv6].hlim = 1
    return bytes(out)


def backend_by_mac(frame: bytes, specs: list[BackendSpec]) -> str:
    dst = Ether(frame).dst
    for b in specs:
        if b.mac == dst:
            return str(ipaddress.ip_address(b.address))
    raise AssertionError(f"frame sent to unknown MAC {dst}")


def flow_key(src: str, dst: str, sport: int, dport: int, proto: int) -> layout.FlowKey:
    """The 40-byte struct vc5_flow_key (tuple + protocol): flow sharing's key."""
    k = layout.FlowKey()
    ct.memmove(ct.addressof(k.t), tuple36(src, dst, sport, dport), 36)
    k.proto = proto
    return k


def flow_entry(src: str, dst: str, sport: int, dport: int, proto: int):
    """(table name, key) of a flow in the data plane's flow tables (layout.FLOW_TABLES)."""
    return layout.flow_entry_key(src, dst, sport, dport, proto)


class Delta:
    """Counter changes since creation: Delta(dp).global_()['packets'] etc."""

    def __init__(self, dp):
        self.dp = dp
        self.before = dp.counters()

    def global_(self) -> dict:
        now = self.dp.counters()["global"]
        return {k: v - self.before["global"].get(k, 0) for k, v in now.items()}
