"""L2 DSR forwarding: packet in -> verdict and packet out, field by field;
the backend is the one vc5 would choose (sdbm + vc5.maglev, computed here)."""

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from tests.lib.testrun import XDP_REDIRECT, XDP_TX, test_run
from vc5.xdp_loader.dataplane import BackendSpec, BackendKey, ServiceKey, ServiceSpec

from .frames import (CLIENT4, CLIENT6, LB_MAC, Delta, backend_by_mac, backends, dsr_expected, tcp, udp,
                     vc5_choice, wire)

CASES = [
    ("192.0.2.10", "10.1.0.", "tcp"),
    ("192.0.2.11", "10.1.0.", "udp"),
    ("2001:db8:10::1", "fd00:1::", "tcp"),
    ("2001:db8:10::2", "fd00:1::", "udp"),
    ("2001:db8:10::3", "10.1.0.", "tcp"),      # IPv6 VIP, IPv4 backends (only MACs change in L2 DSR)
]


@pytest.mark.parametrize("vip,prefix,proto", CASES)
def test_dsr_rewrites_macs_and_ttl_only(clean, vip, prefix, proto):
    bes = backends(prefix, 4)
    clean.set_service(ServiceSpec(vip, 80, proto, backends=bes))
    build = tcp if proto == "tcp" else udp
    pkt = wire(build(vip, 80, sport=41000))
    r = test_run(clean.xdp_fd, bytes(pkt))
    assert r.verdict == "XDP_TX"
    chosen = backend_by_mac(r.data, bes)
    src = CLIENT6 if ":" in vip else CLIENT4
    assert chosen == vc5_choice([b.address for b in bes], src, vip, 41000, 80)
    spec = next(b for b in bes if b.address == chosen)
    assert r.data == dsr_expected(pkt, spec)
    out = Ether(r.data)
    l3 = out[IP] if IP in out else out[IPv6]
    assert l3.dst == vip and l3.src == src                     # DSR: IP destination stays the VIP
    assert (out[IP].ttl if IP in out else out[IPv6].hlim) == 1
    assert out.src == LB_MAC


@pytest.mark.parametrize("vip,prefix", [("192.0.2.20", "10.2.0."), ("2001:db8:20::1", "fd00:2::")])
def test_choice_matches_vc5_for_many_flows(clean, vip, prefix):
    bes = backends(prefix, 7)
    clean.set_service(ServiceSpec(vip, 443, "tcp", backends=bes))
    src = CLIENT6 if ":" in vip else CLIENT4
    seen = set()
    for sport in range(30000, 30000 + 64 * 97, 97):
        r = test_run(clean.xdp_fd, bytes(tcp(vip, 443, sport=sport, flags="S")))
        assert r.action == XDP_TX
        got = backend_by_mac(r.data, bes)
        assert got == vc5_choice([b.address for b in bes], src, vip, sport, 443), sport
        seen.add(got)
    assert len(seen) == 7


def test_only_usable_backends_are_in_the_table(clean):
    vip = "192.0.2.21"
    bes = backends("10.3.0.", 5)
    bes[1] = BackendSpec(bes[1].address, bes[1].mac, bes[1].src_mac, in_table=False)
    bes[3] = BackendSpec(bes[3].address, bes[3].mac, bes[3].src_mac, weight=0)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    usable = [bes[i].address for i in (0, 2, 4)]
    for sport in range(50000, 50400, 13):
        r = test_run(clean.xdp_fd, bytes(tcp(vip, 80, sport=sport, flags="S")))
        assert backend_by_mac(r.data, bes) == vc5_choice(usable, CLIENT4, vip, sport, 80)


@pytest.mark.parametrize("vip,prefix", [("192.0.2.30", "10.4.0."), ("2001:db8:30::1", "fd00:4::")])
def test_sticky_ignores_source_port(clean, vip, prefix):
    bes = backends(prefix, 8)
    clean.set_service(ServiceSpec(vip, 80, "tcp", sticky=True, backends=bes))
    src = CLIENT6 if ":" in vip else CLIENT4
    want = vc5_choice([b.address for b in bes], src, vip, 0, 0, sticky=True)
    for sport in range(20000, 20000 + 40 * 311, 311):
        r = test_run(clean.xdp_fd, bytes(tcp(vip, 80, sport=sport, flags="S")))
        assert backend_by_mac(r.data, bes) == want


@pytest.mark.parametrize("vip,prefix", [("192.0.2.40", "10.5.0."), ("2001:db8:40::1", "fd00:5::")])
def test_one_vlan_tag_is_kept_and_parsed_behind(clean, vip, prefix):
    bes = backends(prefix, 3)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    pkt = wire(tcp(vip, 80, sport=42000, vlan=123))
    r = test_run(clean.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX
    out = Ether(r.data)
    assert out[Dot1Q].vlan == 123 and out.type == 0x8100
    spec = next(b for b in bes if b.mac == out.dst)
    assert r.data == dsr_expected(pkt, spec)


def test_redirect_through_devmap_for_a_backend_with_a_slot(clean):
    vip = "192.0.2.50"
    bes = [BackendSpec("10.6.0.1", "02:00:00:00:06:01", "02:00:00:00:06:ff", redirect_slot=7)]
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    clean.set_redirect(7, 1)                                  # lo: any existing ifindex
    try:
        pkt = wire(tcp(vip, 80))
        r = test_run(clean.xdp_fd, bytes(pkt))
        assert r.action == XDP_REDIRECT
        assert r.data == dsr_expected(pkt, bes[0])
        # a tagged frame stays on its trunk: XDP_TX even for a redirect backend
        assert test_run(clean.xdp_fd, bytes(wire(tcp(vip, 80, vlan=5)))).action == XDP_TX
        # a slot with no interface: dropped and counted, never sent astray
        clean.clear_redirect(7)
        d = Delta(clean)
        assert test_run(clean.xdp_fd, bytes(pkt)).verdict == "XDP_DROP"
        assert d.global_()["err_internal"] == 1
        assert clean.counters()["backends"][BackendKey(ServiceKey(vip, 80, "tcp"), "10.6.0.1")]["errors"] == 1
    finally:
        clean.clear_redirect(7)


def test_counters_by_name(clean):
    vip = "192.0.2.60"
    bes = [BackendSpec("10.7.0.1", "02:00:00:00:07:01", LB_MAC)]
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=bes))
    d = Delta(clean)
    frames = [tcp(vip, 80, flags="S"), tcp(vip, 80, flags="A"), tcp(vip, 80, flags="PA"),
              tcp(vip, 80, flags="FA"), tcp(vip, 80, flags="R"), udp(vip, 53)]
    octets = 0
    for f in frames:
        f = wire(f)
        octets += len(f[IP])
        assert test_run(clean.xdp_fd, bytes(f)).action == XDP_TX
    g = d.global_()
    assert (g["packets"], g["octets"], g["flows"]) == (6, octets, 2)    # flows: first ACK, first UDP
    assert (g["syn"], g["ack"], g["fin"], g["rst"], g["errors"]) == (1, 3, 1, 1, 0)
    c = clean.counters()
    tcpkey, udpkey = ServiceKey(vip, 80, "tcp"), ServiceKey(vip, 53, "udp")
    assert c["vips"][vip]["packets"] == 6 and c["vips"][vip]["flows"] == 2
    s = c["services"][tcpkey]
    assert (s["packets"], s["syn"], s["ack"], s["fin"], s["rst"], s["flows"]) == (5, 1, 3, 1, 1, 1)
    assert c["services"][udpkey]["packets"] == 1
    b = c["backends"][BackendKey(tcpkey, "10.7.0.1")]
    assert (b["packets"], b["flows"], b["syn"], b["ack"], b["fin"], b["rst"]) == (5, 1, 1, 3, 1, 1)
    assert c["backends"][BackendKey(udpkey, "10.7.0.1")]["packets"] == 1
    assert c["latency"]["packets"] > 0 and clean.latency_ns() > 0


def test_udp_and_tcp_with_the_same_ports_are_separate_services(clean):
    vip = "192.0.2.61"
    a = [BackendSpec("10.8.0.1", "02:00:00:00:08:01", LB_MAC)]
    b = [BackendSpec("10.8.0.2", "02:00:00:00:08:02", LB_MAC)]
    clean.set_service(ServiceSpec(vip, 53, "tcp", backends=a))
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=b))
    assert Ether(test_run(clean.xdp_fd, bytes(tcp(vip, 53))).data).dst == a[0].mac
    assert Ether(test_run(clean.xdp_fd, bytes(udp(vip, 53))).data).dst == b[0].mac
    assert UDP in Ether(test_run(clean.xdp_fd, bytes(udp(vip, 53))).data)
    assert TCP in Ether(test_run(clean.xdp_fd, bytes(tcp(vip, 53))).data)
