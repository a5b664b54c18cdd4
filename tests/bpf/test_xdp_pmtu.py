"""Path MTU both ways: (b) a packet too big for the egress MTU once
encapsulated is answered with ICMP Fragmentation Needed / Packet Too Big
from the VIP (checksums and quote checked with scapy); (a) an ICMP too-big
addressed to a VIP goes to the backend of the flow it quotes (flow table,
else Maglev), rate-limited per CPU."""

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from tests.lib.testrun import XDP_DROP, XDP_TX, test_run
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import BackendKey, BackendSpec, ServiceKey, ServiceSpec

from .frames import (CLIENT4, CLIENT6, CLIENT_MAC, LB_MAC, Delta, backend_by_mac, backends, ether, tcp,
                     vc5_choice, wire)
from .test_xdp_tunnel import tunnel_backend

ROUTER4, ROUTER6 = "203.0.113.1", "2001:db8:ff::1"


@pytest.fixture
def pmtu(clean):
    yield clean
    clean.set_pmtu_rate(None, None)
    g = clean.maps["global_stats"]
    value = g.lookup(layout.U32(0))
    for cpu in value:
        cpu.pmtu_tat = 0
    g.update(layout.U32(0), value)


def big(vip, size, vlan=None, df=True):
    """A TCP segment whose IP length is `size`."""
    hdr = 40 if ":" in vip else 20
    pkt = tcp(vip, 80, sport=41000, vlan=vlan, payload=b"z" * (size - hdr - 20))
    if IP in pkt:
        pkt[IP].flags = "DF" if df else 0
    return wire(pkt)


@pytest.mark.parametrize("vlan", [None, 12])
def test_frag_needed_for_ipv4_too_big(pmtu, vlan):
    vip = "192.0.2.80"
    be = tunnel_backend("gue", 4, mtu=1400, vlan=30)                 # overhead 20 + 12
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    assert test_run(pmtu.xdp_fd, bytes(big(vip, 1368, vlan))).action == XDP_TX      # fits exactly
    pkt = big(vip, 1369, vlan)
    d = Delta(pmtu)
    r = test_run(pmtu.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX
    out = Ether(r.data)
    assert (out.dst, out.src) == (CLIENT_MAC, LB_MAC)
    if vlan is not None:
        assert out[Dot1Q].vlan == vlan                   # back the way it came, tag as received
    want = (IP(src=vip, dst=CLIENT4, ttl=64, id=out[IP].id, flags=0)
            / ICMP(type=3, code=4, nexthopmtu=1368) / Raw(bytes(pkt[IP])[:28]))
    assert bytes(out[IP]) == bytes(want)                 # scapy computed both checksums
    assert len(out[IP]) == 56
    g = d.global_()
    assert (g["too_big"], g["packets"], g["errors"]) == (1, 0, 0)
    c = pmtu.counters()
    assert c["services"][ServiceKey(vip, 80, "tcp")]["too_big"] == 1
    assert c["backends"][BackendKey(ServiceKey(vip, 80, "tcp"), be.address)]["too_big"] == 1


def test_ipv4_too_big_without_df_is_dropped(pmtu):
    vip = "192.0.2.81"
    be = BackendSpec("10.40.0.1", "02:00:00:00:40:01", LB_MAC, mtu=1300)
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    d = Delta(pmtu)
    assert test_run(pmtu.xdp_fd, bytes(big(vip, 1301, df=False))).action == XDP_DROP
    g = d.global_()
    assert (g["too_big"], g["too_big_no_df"]) == (1, 1)
    assert test_run(pmtu.xdp_fd, bytes(big(vip, 1300, df=False))).action == XDP_TX     # L2: overhead 0


@pytest.mark.parametrize("size,quote", [(1349, 1232), (1500, 1232)])
def test_packet_too_big_for_ipv6(pmtu, size, quote):
    vip = "2001:db8:80::1"
    be = tunnel_backend("gue", 6, mtu=1400)                         # overhead 40 + 12
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    assert test_run(pmtu.xdp_fd, bytes(big(vip, 1348))).action == XDP_TX
    pkt = big(vip, size)
    r = test_run(pmtu.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX
    out = Ether(r.data)
    assert (out.dst, out.src) == (CLIENT_MAC, LB_MAC)
    want = IPv6(src=vip, dst=CLIENT6, hlim=64) / ICMPv6PacketTooBig(mtu=1348) / Raw(bytes(pkt[IPv6])[:quote])
    assert bytes(out[IPv6]) == bytes(want)               # checksum with the pseudo-header, by scapy
    assert len(out[IPv6]) == 1280


def test_packet_too_big_short_quote_on_a_tiny_mtu(pmtu):
    vip = "2001:db8:80::2"
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=[tunnel_backend("ipip", 6, mtu=1000)]))
    pkt = big(vip, 1100)
    out = Ether(test_run(pmtu.xdp_fd, bytes(pkt)).data)
    want = IPv6(src=vip, dst=CLIENT6, hlim=64) / ICMPv6PacketTooBig(mtu=960) / Raw(bytes(pkt[IPv6])[:48])
    assert bytes(out[IPv6]) == bytes(want)


def frag_needed(vip, client, sport, dport=80, mtu=1400):
    """What a router sends when it cannot forward the backend's VIP:dport -> client:sport packet."""
    quoted = IP(src=vip, dst=client, flags="DF") / TCP(sport=dport, dport=sport, flags="A")
    return wire(ether() / IP(src=ROUTER4, dst=vip) / ICMP(type=3, code=4, nexthopmtu=mtu)
                / Raw(bytes(quoted)[:28]))


def too_big6(vip, client, sport, dport=80, mtu=1280):
    quoted = IPv6(src=vip, dst=client) / TCP(sport=dport, dport=sport, flags="A") / (b"r" * 1200)
    return wire(ether() / IPv6(src=ROUTER6, dst=vip) / ICMPv6PacketTooBig(mtu=mtu)
                / Raw(bytes(quoted)[:1232]))


@pytest.mark.parametrize("vip,prefix", [("192.0.2.82", "10.41.0."), ("2001:db8:82::1", "fd41::")])
def test_icmp_goes_to_the_quoted_flows_backend(pmtu, vip, prefix):
    bes = backends(prefix, 4)
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    client = CLIENT6 if ":" in vip else CLIENT4
    build = too_big6 if ":" in vip else frag_needed
    # a flow pinned to its backend, then that backend drained: Maglev would now choose another
    first = backend_by_mac(test_run(pmtu.xdp_fd, bytes(tcp(vip, 80, sport=41000, flags="A"))).data, bes)
    rest = [b for b in bes if b.address != first]
    drained = [BackendSpec(b.address, b.mac, b.src_mac, in_table=b.address != first) for b in bes]
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=drained))
    d = Delta(pmtu)
    msg = build(vip, client, 41000)
    r = test_run(pmtu.xdp_fd, bytes(msg))
    assert r.action == XDP_TX
    assert backend_by_mac(r.data, bes) == first                       # flow-table hit
    out = Ether(r.data)
    l3 = out[IP] if IP in out else out[IPv6]
    assert (l3.src, l3.dst) == ((ROUTER6 if ":" in vip else ROUTER4), vip)   # the ICMP itself, to the VIP
    assert bytes(l3.payload) == bytes((msg[IP] if IP in msg else msg[IPv6]).payload)
    # no flow: Maglev, and nothing is stored
    sport = 42000
    r = test_run(pmtu.xdp_fd, bytes(build(vip, client, sport)))
    assert backend_by_mac(r.data, bes) == vc5_choice([b.address for b in rest], client, vip, sport, 80)
    g = d.global_()
    assert (g["pmtu_relayed"], g["packets"], g["flows"], g["err_icmp_unsupported"]) == (2, 0, 0, 0)


def test_icmp_relay_through_a_tunnel(pmtu):
    vip = "192.0.2.83"
    be = tunnel_backend("gue", 4)
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    msg = frag_needed(vip, CLIENT4, 41000)
    r = test_run(pmtu.xdp_fd, bytes(msg))
    assert r.action == XDP_TX
    out = Ether(r.data)
    inner = IP(bytes(out[IP].payload)[12:])               # UDP 8 + GUE 4
    assert inner[ICMP].type == 3 and inner.dst == vip and inner.ttl == msg[IP].ttl - 1
    fresh = out.copy()
    fresh[IP].chksum = None
    fresh[IP].payload.chksum = None
    assert bytes(Ether(bytes(fresh))) == r.data          # outer IP and UDP checksums valid


def test_icmp_quoting_something_else_is_refused(pmtu):
    vip = "192.0.2.84"
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.42.0.", 2)))
    quoted = IP(src="192.0.2.99", dst=CLIENT4) / TCP(sport=80, dport=41000)       # not from our VIP
    msg = ether() / IP(src=ROUTER4, dst=vip) / ICMP(type=3, code=4) / Raw(bytes(quoted)[:28])
    d = Delta(pmtu)
    assert test_run(pmtu.xdp_fd, bytes(wire(msg))).action == XDP_DROP
    assert d.global_()["err_icmp_unsupported"] == 1
    short = ether() / IP(src=ROUTER4, dst=vip) / ICMP(type=3, code=4) / Raw(bytes(quoted)[:24])
    assert test_run(pmtu.xdp_fd, bytes(wire(short))).action == XDP_DROP
    assert d.global_()["err_icmp_header"] == 1
    other = ether() / IP(src=ROUTER4, dst=vip) / ICMP(type=3, code=1) / Raw(bytes(quoted)[:28])
    assert test_run(pmtu.xdp_fd, bytes(wire(other))).action == XDP_DROP
    assert d.global_()["err_icmp_unsupported"] == 2


def test_relay_is_rate_limited(pmtu):
    vip = "192.0.2.85"
    pmtu.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.43.0.", 2)))
    pmtu.set_pmtu_rate(1 / 3600, 3)                   # one an hour, bursts of 3
    d = Delta(pmtu)
    verdicts = [test_run(pmtu.xdp_fd, bytes(frag_needed(vip, CLIENT4, 41000 + i))).action for i in range(5)]
    assert verdicts == [XDP_TX] * 3 + [XDP_DROP] * 2
    g = d.global_()
    assert (g["pmtu_relayed"], g["pmtu_rate_limited"], g["errors"]) == (3, 2, 0)
