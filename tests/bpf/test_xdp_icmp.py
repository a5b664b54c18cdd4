"""ICMP echo requests to a VIP (with any service) are answered in XDP:
MACs and addresses swapped, echo reply, TTL/hop limit 64, checksums right
(verified by scapy re-computing them from scratch)."""

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1Q, Ether

from tests.lib.testrun import XDP_PASS, XDP_TX, test_run
from vc5.xdp_loader.dataplane import ServiceSpec

from .frames import CLIENT4, CLIENT6, CLIENT_MAC, LB_MAC, Delta, backends, ether

VIP4, VIP6 = "192.0.2.150", "2001:db8:150::1"


def checksums_fresh(pkt):
    """pkt with every checksum recomputed by scapy."""
    fresh = pkt.copy()
    for layer in (IP, ICMP):
        if layer in fresh:
            fresh[layer].chksum = None
    if ICMPv6EchoReply in fresh:
        fresh[ICMPv6EchoReply].cksum = None
    return Ether(bytes(fresh))


@pytest.mark.parametrize("vlan", [None, 7])
def test_icmp_echo_v4_is_answered(clean, vlan):
    clean.set_service(ServiceSpec(VIP4, 80, "tcp", backends=backends("10.11.0.", 1)))
    req = ether(vlan) / IP(src=CLIENT4, dst=VIP4, ttl=57, id=99) / ICMP(id=7, seq=3) / b"abcdefgh"
    d = Delta(clean)
    r = test_run(clean.xdp_fd, bytes(req))
    assert r.action == XDP_TX
    out = Ether(r.data)
    assert (out.src, out.dst) == (LB_MAC, CLIENT_MAC)
    if vlan is not None:
        assert out[Dot1Q].vlan == vlan
    assert (out[IP].src, out[IP].dst, out[IP].ttl, out[IP].id) == (VIP4, CLIENT4, 64, 99)
    assert (out[ICMP].type, out[ICMP].code, out[ICMP].id, out[ICMP].seq) == (0, 0, 7, 3)
    assert bytes(out[ICMP].payload) == b"abcdefgh"
    assert r.data == bytes(checksums_fresh(out))          # IP and ICMP checksums correct
    assert d.global_()["icmp_echo_request"] == 1
    assert clean.counters()["vips"][VIP4]["icmp_echo_request"] == 1


@pytest.mark.parametrize("vlan", [None, 7])
def test_icmp_echo_v6_is_answered(clean, vlan):
    clean.set_service(ServiceSpec(VIP6, 53, "udp", backends=backends("fd00:11::", 1)))
    req = ether(vlan) / IPv6(src=CLIENT6, dst=VIP6, hlim=50) / ICMPv6EchoRequest(id=9, seq=4, data=b"x" * 40)
    r = test_run(clean.xdp_fd, bytes(req))
    assert r.action == XDP_TX
    out = Ether(r.data)
    assert (out.src, out.dst) == (LB_MAC, CLIENT_MAC)
    assert (out[IPv6].src, out[IPv6].dst, out[IPv6].hlim) == (VIP6, CLIENT6, 64)
    rep = out[ICMPv6EchoReply]
    assert (rep.type, rep.code, rep.id, rep.seq, rep.data) == (129, 0, 9, 4, b"x" * 40)
    # the ICMPv6 checksum covers the pseudo-header: scapy recomputes it from scratch
    assert r.data == bytes(checksums_fresh(out))


def test_echo_to_an_address_that_is_not_a_vip_passes(clean):
    req = ether() / IP(src=CLIENT4, dst="192.0.2.151") / ICMP()
    r = test_run(clean.xdp_fd, bytes(req))
    assert r.action == XDP_PASS and r.data == bytes(req)


def test_echo_is_answered_whatever_the_backends_health(clean):
    clean.set_service(ServiceSpec(VIP4, 80, "tcp", backends=[]))
    r = test_run(clean.xdp_fd, bytes(ether() / IP(src=CLIENT4, dst=VIP4) / ICMP()))
    assert r.action == XDP_TX
