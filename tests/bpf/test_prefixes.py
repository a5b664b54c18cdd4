"""Source prefixes (bpf/vc5_prefix.h): every IPv4 packet counted on its /20,
every IPv6 packet on its /48's bucket; a blocked source dropped before the
balancer looks at it (no balancer counter moves), counted on the most
specific matching entry and in block_stats; unblocked sources pass."""

import pytest

from tests.lib.testrun import XDP_DROP, XDP_PASS, XDP_TX, test_run
from vc5.xdp_loader import prefixes as px
from vc5.xdp_loader.dataplane import ServiceSpec

from .frames import Delta, backends, tcp, udp

VIP4, VIP6 = "192.0.2.140", "2001:db8:140::1"


@pytest.fixture
def svc(clean):
    p = px.Prefixes(clean.maps, state_file=None)
    p.restore()
    for vip in (VIP4, VIP6):
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.9.0.", 2)))
    yield clean, p
    p._change(set())


def run(dp, pkt):
    return test_run(dp.xdp_fd, bytes(pkt))


def sums(dp, name):
    return px.percpu_u64_sums(dp.maps[name])


def test_ipv4_packets_counted_per_slash20(svc):
    dp, p = svc
    before = sums(dp, "prefix4_stats")
    for src in ("203.0.113.1", "203.0.113.200", "203.0.127.255"):     # one /20: 203.0.112.0/20
        assert run(dp, tcp(VIP4, src=src)).action == XDP_TX
    assert run(dp, udp("192.0.2.199", src="203.0.128.1")).action == XDP_PASS   # next /20, not a VIP
    after = sums(dp, "prefix4_stats")
    diff = {i: after[i] - before[i] for i in range(len(after)) if after[i] != before[i]}
    assert diff == {px.slot4("203.0.112.0"): 3, px.slot4("203.0.128.0"): 1}
    assert px.slot4_prefix(px.slot4("203.0.113.1")) == "203.0.112.0/20"
    top = dict(p.counters(limit=1).ipv4)
    assert len(top) == 1


def test_ipv6_packets_counted_per_slash48_bucket(svc):
    dp, p = svc
    before = sums(dp, "prefix6_stats")
    for src in ("2001:db8:aaaa::1", "2001:db8:aaaa:ffff::2"):     # one /48
        assert run(dp, tcp(VIP6, src=src)).action == XDP_TX
    assert run(dp, tcp(VIP6, src="2001:db8:bbbb::1")).action == XDP_TX
    after = sums(dp, "prefix6_stats")
    diff = {i: after[i] - before[i] for i in range(len(after)) if after[i] != before[i]}
    a, b = px.bucket6("2001:db8:aaaa::/48"), px.bucket6("2001:db8:bbbb::/48")
    assert a != b
    assert diff == {a: 2, b: 1}


@pytest.mark.parametrize("blocked,src,vip,family", [
    ("198.51.100.0/24", "198.51.100.9", VIP4, "blocked4"),
    ("2001:db8:bad::/48", "2001:db8:bad:1::9", VIP6, "blocked6")], ids=["v4", "v6"])
def test_blocked_source_dropped_before_anything_else(svc, blocked, src, vip, family):
    dp, p = svc
    pkt = tcp(vip, src=src)
    assert run(dp, pkt).action == XDP_TX                 # balanced while not blocked
    p.block([blocked])
    d = Delta(dp)
    totals = p.totals()
    r = run(dp, pkt)
    assert r.action == XDP_DROP
    g = d.global_()
    # nothing of the balancer ran: no packet, error, not_a_vip or flow counted
    assert {k: v for k, v in g.items() if v and k not in ("seen", "latency_ns", "latency_packets")} == {}
    after = p.totals()
    assert after[family] - totals[family] == 1
    assert after["blocked_octets"] - totals["blocked_octets"] == len(bytes(pkt)) - 14
    assert p.blocked() == {blocked: 1}
    # a non-VIP destination from the same source is dropped too (before the VIP check)
    other = "192.0.2.199" if family == "blocked4" else "2001:db8:199::1"
    assert run(dp, udp(other, src=src)).action == XDP_DROP
    p.unblock([blocked])
    assert run(dp, pkt).action == XDP_TX
    assert p.blocked() == {}


def test_other_sources_pass(svc):
    dp, p = svc
    p.block(["198.51.100.0/24", "2001:db8:bad::/48"])
    assert run(dp, tcp(VIP4, src="198.51.101.1")).action == XDP_TX
    assert run(dp, tcp(VIP6, src="2001:db8:bae::1")).action == XDP_TX
    assert p.blocked() == {"198.51.100.0/24": 0, "2001:db8:bad::/48": 0}


def test_most_specific_entry_counts_and_exact_removal(svc):
    dp, p = svc
    p.block(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"])
    for src in ("10.1.2.3", "10.1.9.9", "10.1.9.10", "10.200.0.1"):
        assert run(dp, tcp(VIP4, src=src)).action == XDP_DROP
    assert p.blocked() == {"10.0.0.0/8": 1, "10.1.0.0/16": 2, "10.1.2.3/32": 1}
    p.unblock(["10.0.0.0/8"])            # only that entry: the /16 still covers 10.1.x.x
    assert run(dp, tcp(VIP4, src="10.200.0.1")).action == XDP_TX
    assert run(dp, tcp(VIP4, src="10.1.200.1")).action == XDP_DROP
    assert p.listed() == ("10.1.0.0/16", "10.1.2.3/32")


def test_bad_prefix_changes_nothing(svc):
    dp, p = svc
    p.block(["192.0.2.0/25"])
    with pytest.raises(px.PrefixError, match=r"'10.1.2.3/8': host bits set \(the prefix is 10.0.0.0/8\)"):
        p.block(["203.0.113.0/24", "10.1.2.3/8"])
    with pytest.raises(px.PrefixError, match="'nonsense': not a prefix"):
        p.block(["nonsense"])
    with pytest.raises(px.PrefixError, match="not on the block list: 203.0.113.0/24"):
        p.unblock(["203.0.113.0/24"])
    assert p.blocked() == {"192.0.2.0/25": 0}
