"""Flow tables at scale (issue #14): a UDP flood past the UDP table's capacity
cannot evict TCP flows; above the new-flow rate, new flows are balanced by
Maglev but not stored (counted); a stateless service stores nothing; a flow
keeps its backend when its packets move to another CPU."""

import os
import struct

import pytest

from tests.lib.testrun import XDP_TX, TestRunner, test_run
from vc5.xdp_loader.dataplane import BackendSpec, ServiceSpec

from .frames import CLIENT4, CLIENT6, Delta, backend_by_mac, backends, flow_entry, tcp, udp, vc5_choice

UDP_SPORT = 14 + 20         # offset of the UDP source port in an untagged IPv4 frame


def send(dp, pkt, bes):
    r = test_run(dp.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX, r.verdict
    return backend_by_mac(r.data, bes)


def drained(bes, address):
    return [BackendSpec(b.address, b.mac, b.src_mac, in_table=(b.address != address)) for b in bes]


def udp_flood(dp, vip, port, count, first_sport=1024):
    """`count` new UDP flows (source ports from first_sport, sources 198.51.100.x), each one
    frame, patched in place from one template (the program does not check L4 sums)."""
    runner = TestRunner(dp.xdp_fd)
    frame = bytearray(bytes(udp(vip, port, src="198.51.100.200", sport=first_sport)))
    for i in range(count):
        struct.pack_into("!H", frame, UDP_SPORT, 1024 + (first_sport + i) % 60000)
        frame[14 + 15] = 200 + (first_sport + i) // 60000 % 50       # last octet of the source
        assert runner.run(bytes(frame)).action == XDP_TX


def table_len(dp, name):
    return len(dp.maps[name].keys())


@pytest.mark.parametrize("vip,src,prefix", [("192.0.2.230", CLIENT4, "10.50.0."),
                                            ("2001:db8:230::1", CLIENT6, "fd00:50::")])
def test_udp_flood_past_capacity_leaves_tcp_flows_on_their_backend(clean, one_cpu, vip, src, prefix):
    bes = backends(prefix, 4)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    clean.set_service(ServiceSpec("192.0.2.231", 53, "udp", backends=backends("10.51.0.", 4)))
    pinned = {s: send(clean, tcp(vip, 80, sport=s, flags="A"), bes) for s in range(44000, 44200)}
    tcp_table = flow_entry(src, vip, 44000, 80, 6)[0]
    capacity = clean.maps["flows_udp"].spec.max_entries
    udp_flood(clean, "192.0.2.231", 53, 3 * capacity)
    assert 0 < table_len(clean, "flows_udp") <= capacity                 # the flood filled its own table
    assert table_len(clean, tcp_table) == len(pinned)                     # ... and evicted no TCP flow
    for b in {*pinned.values()}:                                          # every backend drained at once:
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=drained(bes, b)))
        for s, was in pinned.items():                                     # its flows stay on it
            if was == b:
                assert send(clean, tcp(vip, 80, sport=s, flags="PA"), bes) == b


def test_above_the_new_flow_rate_flows_are_balanced_not_stored(clean, one_cpu):
    vip = "192.0.2.232"
    bes = backends("10.52.0.", 5)
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=bes))
    clean.maps["flow_limit"].update(clean.maps["flow_limit"].spec.key(0), clean.maps["flow_limit"].zero())
    clean.set_flow_rate(0.01, 5)              # 5 at once, then one per 100 s: nothing refills here
    d = Delta(clean)
    for sport in range(45000, 45020):
        got = send(clean, udp(vip, 53, sport=sport), bes)
        assert got == vc5_choice([b.address for b in bes], CLIENT4, vip, sport, 53)    # still balanced
    table = clean.maps["flows_udp"]
    stored = [s for s in range(45000, 45020) if table.lookup(flow_entry(CLIENT4, vip, s, 53, 17)[1])]
    assert stored == list(range(45000, 45005))
    g = d.global_()
    assert (g["flow_rate_limited"], g["flows"], g["packets"], g["errors"]) == (15, 5, 20, 0)
    clean.set_flow_rate(None)
    send(clean, udp(vip, 53, sport=45010), bes)
    assert clean.maps["flows_udp"].lookup(flow_entry(CLIENT4, vip, 45010, 53, 17)[1]) is not None


@pytest.mark.parametrize("vip,src,prefix", [("192.0.2.233", CLIENT4, "10.53.0."),
                                            ("2001:db8:233::1", CLIENT6, "fd00:53::")])
def test_a_stateless_service_stores_nothing(clean, one_cpu, vip, src, prefix):
    bes = backends(prefix, 4)
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=bes, stateless=True))
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes, stateless=True))
    d = Delta(clean)
    for sport in range(46000, 46050):
        assert send(clean, udp(vip, 53, src=src, sport=sport), bes) == \
            vc5_choice([b.address for b in bes], src, vip, sport, 53)
        assert send(clean, tcp(vip, 80, src=src, sport=sport, flags="A"), bes) == \
            vc5_choice([b.address for b in bes], src, vip, sport, 80)
    for name in ("flows", "flows6", "flows_udp", "flows_udp6"):
        assert table_len(clean, name) == 0, name
    g = d.global_()
    assert (g["flows"], g["flow_rate_limited"], g["packets"]) == (0, 0, 100)
    # without the flag the same service stores its flows
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=bes))
    send(clean, udp(vip, 53, src=src, sport=46000), bes)
    assert table_len(clean, flow_entry(src, vip, 46000, 53, 17)[0]) == 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_flow_moving_cpu_keeps_its_backend(clean, one_cpu, proto):
    vip = "192.0.2.234"
    bes = backends("10.54.0.", 5)
    port = 80 if proto == "tcp" else 53
    pkt = (lambda: tcp(vip, port, sport=47000, flags="A")) if proto == "tcp" else \
        (lambda: udp(vip, port, sport=47000))
    clean.set_service(ServiceSpec(vip, port, proto, backends=bes))
    first = send(clean, pkt(), bes)
    clean.set_service(ServiceSpec(vip, port, proto, backends=drained(bes, first)))
    other = next(c for c in range(os.cpu_count()) if c != one_cpu)
    os.sched_setaffinity(0, {other})
    try:
        assert send(clean, pkt(), bes) == first          # the other CPU finds the same entry
    finally:
        os.sched_setaffinity(0, {one_cpu})
    name, k = flow_entry(CLIENT4, vip, 47000, port, 6 if proto == "tcp" else 17)
    assert clean.maps[name].lookup(k).cookie != 0 and table_len(clean, name) == 1
