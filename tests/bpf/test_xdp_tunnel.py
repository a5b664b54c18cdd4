"""L3 DSR: IPIP, GRE, FOU and GUE for every mix of VIP and backend family,
byte for byte against the packet scapy builds (scapy computes every length
and checksum itself), and the tunnel counters."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.packet import Raw

from tests.lib.testrun import XDP_DROP, XDP_TX, test_run
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import BackendKey, BackendSpec, ServiceKey, ServiceSpec

from .frames import CLIENT4, CLIENT6, LB_MAC, Delta, sdbm16, tcp, tuple36, udp, wire

GW_MAC = "02:00:00:00:02:54"          # the router towards the backends
PORT = 6080
OUTER = {4: ("10.20.0.1", "10.30.0.5"), 6: ("fd20::1", "fd30::5")}      # (ours, backend)
PROTO = {"ipip": None, "gre": 47, "fou": 17, "gue": 17}


def tunnel_backend(method, family, **kw):
    ours, backend = OUTER[family]
    kw.setdefault("tunnel_port", PORT if method in ("fou", "gue") else 0)
    return BackendSpec(backend, GW_MAC, LB_MAC, method=method, src_address=ours, **kw)


def inner_after(pkt):
    """The inner packet as sent: TTL / hop limit minus 1, checksum recomputed."""
    inner = (pkt[IP] if IP in pkt else pkt[IPv6]).copy()
    if isinstance(inner, IP):
        inner.ttl -= 1
        inner.chksum = None
    else:
        inner.hlim -= 1
    return inner


def expected(pkt, method, family, out, checksum=True, vlan=None):
    """What the balancer must send for pkt (ids taken from out: IPv4 id is a counter)."""
    ours, backend = OUTER[family]
    inner = inner_after(pkt)
    inner6 = isinstance(inner, IPv6)
    src = CLIENT6 if inner6 else CLIENT4
    l3 = inner
    if method == "gre":
        l3 = GRE(proto=0x86DD if inner6 else 0x0800) / inner
    elif method in ("fou", "gue"):
        sport = 0x8000 | (sdbm16(tuple36(src, inner.dst, 41000, 80)) & 0x7FFF)
        body = (Raw(bytes([0, 41 if inner6 else 4, 0, 0])) / inner) if method == "gue" else inner
        l3 = UDP(sport=sport, dport=PORT, chksum=None if checksum else 0) / body
    proto = PROTO[method] or (41 if inner6 else 4)
    if family == 4:
        outer = IP(src=ours, dst=backend, ttl=64, flags="DF", id=out[IP].id, proto=proto) / l3
    else:
        outer = IPv6(src=ours, dst=backend, hlim=64, nh=proto) / l3
    eth = Ether(src=LB_MAC, dst=GW_MAC)
    if vlan is not None:
        eth = eth / Dot1Q(prio=vlan[1], id=vlan[2], vlan=vlan[0])
    return bytes(eth / outer)


MIXES = [(vip, fam) for vip in ("192.0.2.70", "2001:db8:70::1") for fam in (4, 6)]


@pytest.mark.parametrize("method", ["ipip", "gre", "fou", "gue"])
@pytest.mark.parametrize("vip,family", MIXES, ids=["4in4", "4in6", "6in4", "6in6"])
def test_encapsulation_is_byte_exact(clean, method, vip, family):
    be = tunnel_backend(method, family)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    pkt = wire(tcp(vip, 80, sport=41000, flags="A", payload=b"x" * 101))     # odd length
    d = Delta(clean)
    for hit in (False, True):                  # Maglev (stores the flow), then a flow-table hit
        r = test_run(clean.xdp_fd, bytes(pkt))
        assert r.action == XDP_TX, (hit, r.verdict)
        out = Ether(r.data)
        assert r.data == expected(pkt, method, family, out), (hit, out.show(dump=True))
        if family == 4:
            assert out[IP].flags == "DF" and out[IP].ttl == 64
    g = d.global_()
    assert (g["packets"], g["flows"], g["errors"]) == (2, 1, 0)
    c = clean.counters()["backends"][BackendKey(ServiceKey(vip, 80, "tcp"), be.address)]
    assert (c["packets"], c["octets"]) == (2, 2 * len(pkt[IP] if IP in pkt else pkt[IPv6]))


@pytest.mark.parametrize("family", [4, 6])
def test_udp_inner_and_checksums_verified_by_scapy(clean, family):
    vip = "192.0.2.71"
    be = tunnel_backend("gue", family)
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=[be]))
    pkt = wire(udp(vip, 53, sport=41000, payload=b"q" * 200))
    r = test_run(clean.xdp_fd, bytes(pkt))
    out = Ether(r.data)
    fresh = out.copy()
    fresh[UDP].chksum = None            # the OUTER UDP header (first UDP layer)
    if IP in fresh and family == 4:
        fresh[IP].chksum = None
    assert bytes(Ether(bytes(fresh))) == r.data          # scapy recomputes the same checksums
    assert out[UDP].sport >= 0x8000 and out[UDP].dport == PORT
    inner = bytes(out[UDP].payload)[4:]                   # after the 4-byte GUE header
    assert inner == bytes(inner_after(pkt))


def test_no_checksum_applies_to_ipv4_only(clean):
    vip = "192.0.2.72"
    for family, want_zero in ((4, True), (6, False)):
        be = tunnel_backend("fou", family, no_checksum=True)
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
        pkt = wire(tcp(vip, 80, sport=41000))
        out = Ether(test_run(clean.xdp_fd, bytes(pkt)).data)
        assert (out[UDP].chksum == 0) == want_zero
        assert bytes(out) == expected(pkt, "fou", family, out, checksum=not want_zero)
        clean.remove_service(vip, 80, "tcp")


def test_inner_udp_without_checksum_gets_outer_zero(clean):
    vip = "192.0.2.73"
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=[tunnel_backend("gue", 4)]))
    pkt = ether_udp_nocsum(vip)
    out = Ether(test_run(clean.xdp_fd, pkt).data)
    assert out[UDP].chksum == 0 and IP(bytes(out[UDP].payload)[4:])[UDP].chksum == 0


def ether_udp_nocsum(vip):
    p = wire(udp(vip, 53, sport=41000))
    p[UDP].chksum = 0
    return bytes(p)


@pytest.mark.parametrize("method", ["l2", "gue"])
def test_vlan_id_rewritten_pcp_dei_kept(clean, method):
    vip = "192.0.2.74"
    if method == "l2":
        be = BackendSpec("10.31.0.5", GW_MAC, LB_MAC, vlan=20)
    else:
        be = tunnel_backend("gue", 4, vlan=20)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    pkt = wire(tcp(vip, 80, sport=41000, vlan=10))
    pkt[Dot1Q].prio, pkt[Dot1Q].id = 5, 1
    pkt = wire(pkt)
    r = test_run(clean.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX
    out = Ether(r.data)
    assert (out[Dot1Q].vlan, out[Dot1Q].prio, out[Dot1Q].id) == (20, 5, 1)
    if method == "gue":
        assert r.data == expected(pkt, "gue", 4, out, vlan=(20, 5, 1))
    # untagged in, untagged out: nothing added
    out = Ether(test_run(clean.xdp_fd, bytes(wire(tcp(vip, 80, sport=41001)))).data)
    assert Dot1Q not in out


def test_vlan_zero_keeps_the_tag(clean):
    vip = "192.0.2.75"
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[BackendSpec("10.31.0.6", GW_MAC, LB_MAC)]))
    out = Ether(test_run(clean.xdp_fd, bytes(wire(tcp(vip, 80, vlan=33)))).data)
    assert out[Dot1Q].vlan == 33


def test_fou_and_gue_without_port_are_dropped(clean):
    vip = "192.0.2.76"
    for method in ("fou", "gue"):
        be = tunnel_backend(method, 4, tunnel_port=0)
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
        d = Delta(clean)
        r = test_run(clean.xdp_fd, bytes(wire(tcp(vip, 80))))
        assert r.action == XDP_DROP
        g = d.global_()
        assert (g["err_no_tunnel_port"], g["errors"], g["packets"]) == (1, 1, 0)
        c = clean.counters()
        assert c["services"][ServiceKey(vip, 80, "tcp")]["err_no_tunnel_port"] >= 1
        assert c["backends"][BackendKey(ServiceKey(vip, 80, "tcp"), be.address)]["errors"] >= 1
        clean.remove_service(vip, 80, "tcp")


def test_unknown_method_counts_tunnel_unsupported(clean):
    vip = "192.0.2.77"
    be = tunnel_backend("ipip", 4)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[be]))
    key = ServiceKey(vip, 80, "tcp")
    pair = clean._services[key].backends[be.address].pair
    rec = clean.maps["backends"].lookup(layout.U32(pair))
    rec.method = 9                                   # no such method (a newer loader's?)
    clean.maps["backends"].update(layout.U32(pair), rec)
    d = Delta(clean)
    assert test_run(clean.xdp_fd, bytes(wire(tcp(vip, 80)))).action == XDP_DROP
    assert d.global_()["err_tunnel_unsupported"] == 1
    c = clean.counters()["backends"][BackendKey(key, be.address)]
    assert (c["tunnel_unsupported"], c["errors"], c["adjust_failed"], c["current"]) == (1, 1, 0, 0)


def test_spec_refuses_a_tunnel_without_our_address():
    from vc5.xdp_loader.specs import ServiceKey as K, validate_backends
    with pytest.raises(ValueError, match="src_address"):
        validate_backends(K("192.0.2.1", 80, "tcp"), [BackendSpec("10.0.0.1", GW_MAC, LB_MAC, method="gre")])
    with pytest.raises(ValueError, match="src_address"):
        validate_backends(K("192.0.2.1", 80, "tcp"),
                          [BackendSpec("10.0.0.1", GW_MAC, LB_MAC, method="gre", src_address="fd00::1")])
    with pytest.raises(ValueError, match="mtu"):
        validate_backends(K("192.0.2.1", 80, "tcp"), [BackendSpec("10.0.0.1", GW_MAC, LB_MAC, mtu=20)])
