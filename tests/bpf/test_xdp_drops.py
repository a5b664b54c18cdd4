"""What is not balanced: passed to the kernel untouched, or dropped and
counted under its own vc5 err_* name (and `errors`)."""

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from tests.lib.testrun import XDP_DROP, XDP_PASS, test_run
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import BackendSpec, ServiceKey, ServiceSpec

from .frames import CLIENT4, CLIENT6, CLIENT_MAC, LB_MAC, Delta, backends, ether, tcp, udp, wire

VIP4, VIP6 = "192.0.2.100", "2001:db8:100::1"


@pytest.fixture
def svc(clean):
    for vip in (VIP4, VIP6):
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.9.0.", 2)))
        clean.set_service(ServiceSpec(vip, 53, "udp", backends=backends("10.9.0.", 2)))
    return clean


def run(dp, pkt):
    return test_run(dp.xdp_fd, bytes(pkt))


def assert_dropped(dp, pkt, counter, vip=None):
    d = Delta(dp)
    vip_before = dp.counters()["vips"].get(vip, {}) if vip else {}
    r = run(dp, pkt)
    assert r.action == XDP_DROP, (counter, r.verdict)
    g = d.global_()
    assert g[counter] == 1 and g["errors"] == 1, {k: v for k, v in g.items() if v}
    assert g["packets"] == 0
    if vip:
        after = dp.counters()["vips"][vip]
        assert after[counter] - vip_before.get(counter, 0) == 1


@pytest.mark.parametrize("pkt", [
    tcp("192.0.2.199", 80), udp("2001:db8:199::1", 53), tcp("192.0.2.199", 80, vlan=9)], ids=str)
def test_not_a_vip_passes_unchanged(svc, pkt):
    d = Delta(svc)
    r = run(svc, pkt)
    assert r.action == XDP_PASS and r.data == bytes(pkt)
    assert d.global_()["not_a_vip"] == 1


def test_not_ip_passes_unchanged(svc):
    for pkt in (Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=VIP4),
                ether(vlan=3) / ARP(pdst=VIP4),
                ether() / Dot1Q(vlan=3) / Dot1Q(vlan=4) / IP(dst=VIP4) / TCP(dport=80)):  # QinQ: not parsed
        d = Delta(svc)
        r = run(svc, pkt)
        assert r.action == XDP_PASS and r.data == bytes(pkt)
        assert d.global_()["not_ip"] == 1


@pytest.mark.parametrize("vip", [VIP4, VIP6])
def test_vip_port_without_service_is_dropped(svc, vip):
    assert_dropped(svc, tcp(vip, 8080), "err_service_not_found", vip)
    assert_dropped(svc, udp(vip, 80), "err_service_not_found", vip)   # tcp/80 exists, not udp/80


def test_ipv4_fragments_are_dropped(svc):
    first = ether() / IP(src=CLIENT4, dst=VIP4, flags="MF") / TCP(dport=80)
    later = ether() / IP(src=CLIENT4, dst=VIP4, frag=100) / Raw(b"x" * 20)
    assert_dropped(svc, first, "err_fragmented", VIP4)
    assert_dropped(svc, later, "err_fragmented", VIP4)


def test_ipv6_fragment_header_is_dropped(svc):
    pkt = ether() / IPv6(src=CLIENT6, dst=VIP6) / IPv6ExtHdrFragment(m=1) / TCP(dport=80)
    assert_dropped(svc, pkt, "err_fragmented", VIP6)


def test_ipv6_extension_headers_are_unsupported(svc):
    pkt = ether() / IPv6(src=CLIENT6, dst=VIP6) / IPv6ExtHdrHopByHop() / TCP(dport=80)
    assert_dropped(svc, pkt, "err_l4_unsupported", VIP6)


def test_ipv4_options_are_dropped(svc):
    pkt = ether() / IP(src=CLIENT4, dst=VIP4, options=b"\x01\x01\x01\x00") / TCP(dport=80)
    assert_dropped(svc, pkt, "err_malformed", VIP4)


@pytest.mark.parametrize("vip", [VIP4, VIP6])
@pytest.mark.parametrize("ttl", [0, 1])
def test_ttl_or_hop_limit_at_most_one_is_dropped(svc, vip, ttl):
    assert_dropped(svc, tcp(vip, 80, ttl=ttl), "err_expired", vip)


@pytest.mark.parametrize("vip", [VIP4, VIP6])
def test_other_l4_protocols_are_dropped(svc, vip):
    l3 = IP(src=CLIENT4, dst=vip, proto=47) if vip == VIP4 else IPv6(src=CLIENT6, dst=vip, nh=47)
    assert_dropped(svc, ether() / l3 / Raw(b"\x00" * 24), "err_l4_unsupported", vip)


def test_icmp_other_than_echo_request_is_dropped(svc):
    assert_dropped(svc, ether() / IP(src=CLIENT4, dst=VIP4) / ICMP(type=0), "err_icmp_unsupported", VIP4)
    assert_dropped(svc, ether() / IP(src=CLIENT4, dst=VIP4) / ICMP(type=3, code=4) / Raw(b"x" * 28),
                   "err_icmp_unsupported", VIP4)


def _cut_l3(l3, keep: int):
    """The first `keep` bytes of an IP packet, length field made consistent."""
    raw = bytearray(bytes(l3)[:keep])
    if raw[0] >> 4 == 4:
        raw[2:4] = len(raw).to_bytes(2, "big")
    else:
        raw[4:6] = (len(raw) - 40).to_bytes(2, "big")
    return bytes(raw)


def _l3(pkt):
    return pkt[IP] if IP in pkt else pkt[IPv6]


def _l2(vip, vlan=None) -> bytes:
    """Ethernet (+ 802.1Q) header with the right EtherType for vip's family."""
    etype = (0x0800 if vip == VIP4 else 0x86DD).to_bytes(2, "big")
    macs = bytes.fromhex(LB_MAC.replace(":", "")) + bytes.fromhex(CLIENT_MAC.replace(":", ""))
    tag = b"\x81\x00" + vlan.to_bytes(2, "big") if vlan is not None else b""
    return macs + tag + etype


@pytest.mark.parametrize("vlan", [None, 5])
@pytest.mark.parametrize("vip", [VIP4, VIP6])
def test_truncated_at_every_header_boundary(svc, vip, vlan):
    ip_len = 20 if vip == VIP4 else 40
    l2 = _l2(vip, vlan)
    full = bytes(tcp(vip, 80))
    # A frame shorter than the Ethernet header never reaches XDP: BPF_PROG_TEST_RUN refuses it.
    with pytest.raises(OSError):
        run(svc, full[:13])
    # VLAN tag / IP header one byte short: malformed (not even the VIP is known).
    short = [l2 + full[14:14 + ip_len - 1]]
    if vlan is not None:
        short.append(l2[:17])
    for frame in short:
        d = Delta(svc)
        assert run(svc, frame).action == XDP_DROP
        assert d.global_()["err_malformed"] == 1 and d.global_()["errors"] == 1
    l3 = _l3(tcp(vip, 80, payload=b""))
    assert_dropped(svc, l2 + _cut_l3(l3, ip_len + 19), "err_tcp_header", vip)
    l3 = _l3(udp(vip, 53, payload=b""))
    assert_dropped(svc, l2 + _cut_l3(l3, ip_len + 7), "err_udp_header", vip)
    if vip == VIP4:
        l3 = IP(src=CLIENT4, dst=vip) / ICMP()
    else:
        l3 = IPv6(src=CLIENT6, dst=vip) / ICMPv6EchoRequest()
    assert_dropped(svc, l2 + _cut_l3(l3, ip_len + 7), "err_icmp_header", vip)
    # and the complete headers are accepted
    assert run(svc, l2 + bytes(_l3(tcp(vip, 80, payload=b"")))).verdict == "XDP_TX"


@pytest.mark.parametrize("vip", [VIP4, VIP6])
def test_ip_length_inconsistent_with_frame(svc, vip):
    pkt = bytes(wire(tcp(vip, 80, payload=b"x" * 100)))
    lenpos = 14 + (2 if vip == VIP4 else 4)
    longer = bytearray(pkt)
    longer[lenpos:lenpos + 2] = (int.from_bytes(pkt[lenpos:lenpos + 2], "big") + 1).to_bytes(2, "big")
    assert_dropped(svc, bytes(longer), "err_tot_len", vip)           # claims more than the frame holds
    assert_dropped(svc, pkt + b"\x00" * 8, "err_tot_len", vip)       # trailing bytes in a large frame


def test_ethernet_padding_of_a_minimum_frame_is_accepted(svc):
    pkt = bytes(wire(tcp(VIP4, 80, payload=b"")))          # 54 bytes, padded to 60 on the wire
    r = run(svc, pkt + b"\x00" * 6)
    assert r.verdict == "XDP_TX"


def test_no_usable_backend_is_dropped(clean):
    vip = "192.0.2.101"
    bes = [BackendSpec("10.9.1.1", "02:00:00:00:09:01", LB_MAC, in_table=False)]
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    assert_dropped(clean, tcp(vip, 80), "err_no_backend", vip)
    assert clean.counters()["services"][ServiceKey(vip, 80, "tcp")]["err_no_backend"] == 1
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[]))
    assert_dropped(clean, tcp(vip, 80), "err_no_backend", vip)


def test_removed_vip_passes_again(clean):
    vip = "192.0.2.103"
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.9.3.", 1)))
    assert run(clean, tcp(vip, 80)).verdict == "XDP_TX"
    clean.remove_service(vip, 80, "tcp")
    assert run(clean, tcp(vip, 80)).action == XDP_PASS
    assert vip not in clean.counters()["vips"]


def _colliding(vip: str) -> str:
    """Another address with the same vip_filter bit as vip."""
    raw = bytearray(ipaddress.ip_address(vip).packed)
    if len(raw) == 4:
        raw[0] ^= 0x0F                   # x = a | b<<8 | c<<16 | d<<24: a and c fold together
        raw[2] ^= 0x0F
    else:
        raw[0] ^= 0x0F                   # bytes 0 and 4 are the same byte of two XORed words
        raw[4] ^= 0x0F
    other = str(ipaddress.ip_address(bytes(raw)))
    assert other != vip and layout.vip_fold(other) == layout.vip_fold(vip)
    return other


@pytest.mark.parametrize("vip", [VIP4, VIP6])
def test_address_sharing_a_vip_filter_bit_still_passes_untouched(svc, vip):
    other = _colliding(vip)
    src = CLIENT4 if vip == VIP4 else CLIENT6
    echo = ether() / IP(src=src, dst=other) / ICMP() if vip == VIP4 else \
        ether() / IPv6(src=src, dst=other) / ICMPv6EchoRequest()
    for pkt in (tcp(other, 80), udp(other, 53), tcp(other, 80, ttl=1), tcp(other, 8080), echo):
        d = Delta(svc)
        r = run(svc, pkt)
        assert r.action == XDP_PASS and r.data == bytes(pkt), pkt.summary()
        assert d.global_()["not_a_vip"] == 1 and d.global_()["errors"] == 0
