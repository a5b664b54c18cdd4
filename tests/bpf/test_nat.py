"""The health-check probe path through BPF_PROG_TEST_RUN: xdp_nat turns a
probe to a probe address into the packet a client would send to the VIP on
the backend; xdp_main turns the backend's answer back. Checksums are verified
by scapy recomputing them from scratch."""

import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from tests.lib.testrun import XDP_DROP, XDP_PASS, XDP_REDIRECT, test_run
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import ServiceSpec
from vc5.xdp_loader.nat import HOST4, HOST6, NatTarget, ProbeNat, index_of, probe_address

from .frames import Delta, backends

VETH_HOST_MAC, VETH_PEER_MAC = "02:00:00:00:0e:01", "02:00:00:00:0e:02"
BE_MAC, LB_MAC = "02:00:00:00:0b:01", "02:00:00:00:0b:1b"
CASES = [  # vip, backend, our address on the backend's subnet
    ("192.0.2.210", "10.21.0.5", "10.21.0.1"),
    ("2001:db8:210::1", "fd00:21::5", "fd00:21::1"),
]
LO = 1   # nat_tx needs a real interface; test runs never transmit
CLOCK_MONOTONIC_COARSE = 6   # <linux/time.h>; bpf_ktime_get_coarse_ns reads it


@pytest.fixture
def nat(clean):
    n = ProbeNat(clean)
    yield n
    n.clear()
    r = clean.maps["nat_reply"]
    for k in r.keys():
        r.delete(k)


def program(nat, vip, backend, ext):
    nat.update({(vip, backend): NatTarget(vip, backend, ext, BE_MAC, LB_MAC, LO)})
    (entry,) = [a for a in nat.addresses() if a[:2] == (vip, backend)]
    return entry[2]


def l3(src, dst, **kw):
    if ":" in dst:
        if "ttl" in kw:
            kw["hlim"] = kw.pop("ttl")
        return IPv6(src=src, dst=dst, **kw)
    return IP(src=src, dst=dst, **kw)


def probe(nat_addr, l4, **ipkw):
    src = HOST6 if ":" in nat_addr else HOST4
    return Ether(bytes(Ether(src=VETH_HOST_MAC, dst=VETH_PEER_MAC) / l3(src, nat_addr, **ipkw) / l4))


def checksums_ok(frame: bytes) -> bool:
    """True if every IP/TCP/UDP checksum in frame equals scapy's own."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    for layer, field in ((IP, "chksum"), (TCP, "chksum"), (UDP, "chksum")):
        if layer in fresh:
            if layer is UDP and IP in pkt and pkt[UDP].chksum == 0:
                continue     # IPv4 UDP without checksum
            setattr(fresh[layer], field, None)
    return bytes(Ether(bytes(fresh))) == frame


def nat_stats(dp):
    return ProbeNat(dp).counters()


def test_address_scheme_is_vcs():
    assert probe_address(1, 4) == "255.0.0.1"
    assert probe_address(0x010203, 4) == "255.1.2.3"
    assert probe_address(1, 6) == "fefe::ff00:1"
    assert probe_address(0xabcdef, 6) == "fefe::ffab:cdef"
    assert index_of("255.1.2.3") == 0x010203 and index_of("fefe::ffab:cdef") == 0xabcdef
    assert index_of("10.0.0.1") is None and index_of(HOST4) is None


@pytest.mark.parametrize("vip,backend,ext", CASES)
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_request_becomes_client_packet_to_vip(nat, vip, backend, ext, proto):
    addr = program(nat, vip, backend, ext)
    l4 = TCP(sport=40001, dport=80, flags="S", seq=7) if proto == "tcp" else UDP(sport=40001, dport=53)
    pkt = probe(addr, l4 / b"probe-payload")
    before = nat_stats(nat.dp)
    r = test_run(nat.dp.nat_fd, bytes(pkt))
    assert r.action == XDP_REDIRECT
    out = Ether(r.data)
    assert (out.dst, out.src) == (BE_MAC, LB_MAC)
    ip = out[IP] if IP in out else out[IPv6]
    assert (ip.src, ip.dst) == (ext, vip)
    assert (ip.ttl if IP in out else ip.hlim) == 1          # as L2 DSR forwarding
    assert (out.sport, out.dport) == (40001, 80 if proto == "tcp" else 53)
    assert bytes(out[TCP if proto == "tcp" else UDP].payload) == b"probe-payload"
    assert checksums_ok(r.data)
    assert len(r.data) == len(bytes(pkt))
    assert nat_stats(nat.dp)["requests"] == before["requests"] + 1
    assert len(nat.dp.maps["nat_reply"].keys()) == 1


def test_udp_without_checksum_keeps_none(nat):
    vip, backend, ext = CASES[0]
    addr = program(nat, vip, backend, ext)
    raw = bytearray(bytes(probe(addr, UDP(sport=40002, dport=53) / b"q")))
    raw[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    r = test_run(nat.dp.nat_fd, bytes(raw))
    assert r.action == XDP_REDIRECT
    assert Ether(r.data)[UDP].chksum == 0 and checksums_ok(r.data)


@pytest.mark.parametrize("vip,backend,ext", CASES)
def test_answer_is_turned_back_to_the_prober(nat, vip, backend, ext):
    nat.dp.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.21.1.", 2)))
    addr = program(nat, vip, backend, ext)
    assert test_run(nat.dp.nat_fd, bytes(probe(addr, TCP(sport=40003, dport=80, flags="S")))).action \
        == XDP_REDIRECT
    answer = Ether(bytes(Ether(src=BE_MAC, dst=LB_MAC) / l3(vip, ext, ttl=64)
                         / TCP(sport=80, dport=40003, flags="SA", seq=99, ack=1) / b"hello"))
    d = Delta(nat.dp)
    r = test_run(nat.dp.xdp_fd, bytes(answer))
    assert r.action == XDP_PASS
    out = Ether(r.data)
    ip = out[IP] if IP in out else out[IPv6]
    assert (ip.src, ip.dst) == (addr, HOST6 if ":" in vip else HOST4)
    assert (out.sport, out.dport, out[TCP].flags) == (80, 40003, "SA")
    assert (out.src, out.dst) == (BE_MAC, LB_MAC)
    assert checksums_ok(r.data)
    assert d.global_()["probe_reply"] == 1


def test_tagged_answer_keeps_its_tag(nat):
    vip, backend, ext = CASES[0]
    nat.dp.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.21.1.", 2)))
    addr = program(nat, vip, backend, ext)
    test_run(nat.dp.nat_fd, bytes(probe(addr, UDP(sport=40004, dport=80) / b"x")))
    answer = Ether(bytes(Ether(src=BE_MAC, dst=LB_MAC) / Dot1Q(vlan=21) / IP(src=vip, dst=ext)
                         / UDP(sport=80, dport=40004) / b"y"))
    r = test_run(nat.dp.xdp_fd, bytes(answer))
    assert r.action == XDP_PASS
    out = Ether(r.data)
    assert out[Dot1Q].vlan == 21 and (out[IP].src, out[IP].dst) == (addr, HOST4)
    assert checksums_ok(r.data)


def test_expired_answer_is_left_alone(nat):
    vip, backend, ext = CASES[0]
    nat.dp.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.21.1.", 2)))
    addr = program(nat, vip, backend, ext)
    test_run(nat.dp.nat_fd, bytes(probe(addr, TCP(sport=40005, dport=80, flags="S"))))
    replies = nat.dp.maps["nat_reply"]
    (key,) = replies.keys()
    value = replies.lookup(key)
    value.time = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE) - layout.NAT_REPLY_TTL_NS - 10**9
    replies.update(key, value)
    answer = bytes(Ether(src=BE_MAC, dst=LB_MAC) / IP(src=vip, dst=ext)
                   / TCP(sport=80, dport=40005, flags="SA"))
    before = nat_stats(nat.dp)
    r = test_run(nat.dp.xdp_fd, answer)
    assert (r.action, r.data) == (XDP_PASS, answer)            # today's behaviour: untouched
    assert nat_stats(nat.dp)["expired"] == before["expired"] + 1
    assert replies.keys() == []


def test_unknown_probe_address_is_dropped_others_pass(nat):
    vip, backend, ext = CASES[0]
    program(nat, vip, backend, ext)
    before = nat_stats(nat.dp)
    unknown = probe("255.0.0.99", TCP(sport=1, dport=80, flags="S"))
    assert test_run(nat.dp.nat_fd, bytes(unknown)).action == XDP_DROP
    assert nat_stats(nat.dp)["no_entry"] == before["no_entry"] + 1
    for frame in (Ether(src=VETH_HOST_MAC, dst=VETH_PEER_MAC) / IP(src=HOST4, dst="10.9.9.9") / TCP(),
                  Ether(src=VETH_HOST_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="255.255.255.254"),
                  Ether(src=VETH_HOST_MAC, dst=VETH_PEER_MAC) / IPv6(src=HOST6, dst="fe80::1") / UDP()):
        r = test_run(nat.dp.nat_fd, bytes(frame))
        assert (r.action, r.data) == (XDP_PASS, bytes(frame))


def test_probe_with_ttl_1_or_fragment_is_dropped(nat):
    vip, backend, ext = CASES[0]
    addr = program(nat, vip, backend, ext)
    for pkt in (probe(addr, TCP(dport=80), ttl=1), probe(addr, UDP(dport=80), flags="MF")):
        assert test_run(nat.dp.nat_fd, bytes(pkt)).action == XDP_DROP
    assert nat.dp.maps["nat_reply"].keys() == []


def test_non_probe_traffic_is_unchanged(nat):
    vip, backend, ext = CASES[0]
    nat.dp.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.21.1.", 2)))
    program(nat, vip, backend, ext)
    # from a VIP, no probe outstanding: passed untouched (the host may talk to its VIPs)
    stray = bytes(Ether(src=BE_MAC, dst=LB_MAC) / IP(src=vip, dst=ext)
                  / TCP(sport=80, dport=40999, flags="A"))
    r = test_run(nat.dp.xdp_fd, stray)
    assert (r.action, r.data) == (XDP_PASS, stray)
    # client traffic to the VIP is still balanced
    client = bytes(Ether(src="02:00:00:00:00:c1", dst=LB_MAC) / IP(src="198.51.100.7", dst=vip)
                   / TCP(sport=40000, dport=80, flags="S"))
    assert test_run(nat.dp.xdp_fd, client).verdict == "XDP_TX"


def test_allocation_survives_a_restart_and_is_shared_by_a_vip(nat):
    targets = {(v, b): NatTarget(v, b, e, BE_MAC, LB_MAC, LO) for v, b, e in CASES}
    targets[("192.0.2.210", "10.21.0.6")] = NatTarget("192.0.2.210", "10.21.0.6", "10.21.0.1",
                                                      BE_MAC, LB_MAC, LO)
    nat.update(targets)
    first = nat.addresses()
    assert len({a[2] for a in first}) == 3
    again = ProbeNat(nat.dp)               # a restarted loader reads the pinned map
    assert again.addresses() == first
    del targets[("192.0.2.210", "10.21.0.5")]
    again.update(targets)
    assert [a for a in again.addresses()] == [a for a in first if a[1] != "10.21.0.5"]
    nat._index, nat._written = dict(again._index), dict(again._written)
