"""Health-check probes of tunnelled services (docs/probe-path.md, "Tunnels"; vc5-behaviour
section 3.4, section 4 item 6): xdp_nat encapsulates the probe exactly as client traffic to that
backend (its backends[] record: method, port, outer source, checksum flag, MTU), towards the
same next hop. Byte for byte against the frame scapy builds (scapy computes every length and
checksum itself)."""

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tests.lib.testrun import XDP_DROP, XDP_PASS, XDP_REDIRECT, test_run
from vc5.xdp_loader.dataplane import BackendSpec, ServiceSpec
from vc5.xdp_loader.nat import HOST4, HOST6, NatTarget, ProbeNat

VETH_HOST_MAC, VETH_PEER_MAC = "02:00:00:00:0e:01", "02:00:00:00:0e:02"
GW_MAC, LB_MAC = "02:00:00:00:02:54", "02:00:00:00:0b:1b"
LO = 1
PORT = 6080
CASES = {  # family: (vip, our address (outer and inner source), backend)
    4: ("192.0.2.220", "10.20.0.1", "10.30.0.5"),
    6: ("2001:db8:220::1", "fd20::1", "fd30::5"),
}


@pytest.fixture
def nat(clean):
    n = ProbeNat(clean)
    yield n
    n.clear()
    r = clean.maps["nat_reply"]
    for k in r.keys():
        r.delete(k)


def program(nat, family, method, mtu=0, tunnel_port=PORT, no_checksum=False):
    vip, ours, backend = CASES[family]
    be = BackendSpec(backend, GW_MAC, LB_MAC, method=method, src_address=ours, mtu=mtu,
                     tunnel_port=tunnel_port if method in ("fou", "gue") else 0, no_checksum=no_checksum)
    nat.dp.set_service(ServiceSpec(vip, 80, "tcp", backends=(be,)))
    key = f"{vip}:80:tcp"
    nat.update({(vip, backend): NatTarget(vip, backend, ours, GW_MAC, LB_MAC, LO, key, method)})
    return next(a for v, b, a in nat.addresses() if (v, b) == (vip, backend))


def probe(addr, family, payload=b"GET / HTTP/1.0\r\n\r\n"):
    src = HOST4 if family == 4 else HOST6
    ip = IP(src=src, dst=addr, ttl=64) if family == 4 else IPv6(src=src, dst=addr, hlim=64)
    return bytes(Ether(src=VETH_HOST_MAC, dst=VETH_PEER_MAC) / ip
                 / TCP(sport=41234, dport=80, flags="PA", seq=1, ack=1) / payload)


def expected(family, method, out, payload=b"GET / HTTP/1.0\r\n\r\n", checksum=True):
    """The client-like packet (source ours, destination the VIP, TTL 63) in the tunnel."""
    vip, ours, backend = CASES[family]
    inner = (IP(src=ours, dst=vip, ttl=63) if family == 4 else IPv6(src=ours, dst=vip, hlim=63)) \
        / TCP(sport=41234, dport=80, flags="PA", seq=1, ack=1) / payload
    inner6 = family == 6
    body = inner
    if method in ("fou", "gue"):
        if method == "gue":      # GUE variant 0, 4-byte header: proto 4 / 41
            body = Raw(bytes([0, 41 if inner6 else 4, 0, 0])) / inner
        body = UDP(sport=0x8000 | (41234 & 0x7FFF), dport=PORT, chksum=None if checksum else 0) / body
    proto = {"ipip": 41 if inner6 else 4, "gre": 47}.get(method, 17)
    if family == 4:
        outer = IP(src=ours, dst=backend, ttl=64, flags="DF", id=out[IP].id, proto=proto) / body
    else:
        outer = IPv6(src=ours, dst=backend, hlim=64, nh=proto) / body
    return bytes(Ether(src=LB_MAC, dst=GW_MAC) / outer)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("method", ["gue", "ipip", "fou"])
def test_probe_is_encapsulated_byte_exact(nat, family, method):
    addr = program(nat, family, method)
    r = test_run(nat.dp.nat_fd, probe(addr, family))
    assert r.action == XDP_REDIRECT
    assert r.data == expected(family, method, Ether(r.data))
    assert len(nat.dp.maps["nat_reply"].keys()) == 1


def test_gue_fixture_decoded_by_scapy(nat):
    """The GUE probe, read back: outer UDP to the tunnel port, GUE proto 4, the VIP inside."""
    addr = program(nat, 4, "gue")
    out = Ether(test_run(nat.dp.nat_fd, probe(addr, 4)).data)
    assert (out[IP].src, out[IP].dst, out[IP].flags, out[UDP].dport) == ("10.20.0.1", "10.30.0.5", "DF", PORT)
    gue = bytes(out[UDP].payload)
    assert gue[:4] == b"\x00\x04\x00\x00"
    inner = IP(gue[4:])
    assert (inner.src, inner.dst, inner[TCP].dport) == ("10.20.0.1", "192.0.2.220", 80)
    fresh = inner.copy()
    fresh.chksum = None
    fresh[TCP].chksum = None
    assert bytes(IP(bytes(fresh))) == bytes(inner)            # inner checksums still right


def test_no_checksum_and_gre(nat):
    addr = program(nat, 4, "gue", no_checksum=True)
    r = test_run(nat.dp.nat_fd, probe(addr, 4))
    assert r.data == expected(4, "gue", Ether(r.data), checksum=False)
    addr = program(nat, 6, "gre")
    r = test_run(nat.dp.nat_fd, probe(addr, 6))
    assert r.action == XDP_REDIRECT and r.data[14 + 6] == 47 and r.data[14 + 40:14 + 44] == b"\0\0\x86\xdd"


def test_too_big_for_the_egress_mtu_is_dropped(nat):
    addr = program(nat, 4, "gue", mtu=100)
    before = ProbeNat(nat.dp).counters()["dropped"]
    assert test_run(nat.dp.nat_fd, probe(addr, 4, b"x" * 60)).action == XDP_DROP
    assert ProbeNat(nat.dp).counters()["dropped"] == before + 1


def test_record_of_another_backend_is_not_followed(nat):
    """A stale pair (the record now holds another backend): dropped, never sent elsewhere."""
    vip, ours, backend = CASES[4]
    addr = program(nat, 4, "ipip")
    other = BackendSpec("10.30.0.6", GW_MAC, LB_MAC, method="ipip", src_address=ours)
    nat.dp.set_service(ServiceSpec(vip, 80, "tcp", backends=(other,)))
    assert test_run(nat.dp.nat_fd, probe(addr, 4)).action == XDP_DROP


def test_answer_comes_back_natively(nat):
    """The backend answers without a tunnel, from the VIP to our address: xdp_main hands it to the
    prober as it does for L2 probes."""
    vip, ours, _ = CASES[4]
    addr = program(nat, 4, "gue")
    assert test_run(nat.dp.nat_fd, probe(addr, 4)).action == XDP_REDIRECT
    answer = bytes(Ether(src=GW_MAC, dst=LB_MAC) / IP(src=vip, dst=ours, ttl=60)
                   / TCP(sport=80, dport=41234, flags="A", seq=1, ack=20))
    r = test_run(nat.dp.xdp_fd, answer)
    assert r.action == XDP_PASS
    assert (Ether(r.data)[IP].src, Ether(r.data)[IP].dst) == (addr, HOST4)
