"""Export filters, address families and path attributes per peer; RIB timing (pure functions)."""

import ipaddress as ip
from dataclasses import dataclass, field

from vc5.bgpd import attributes as attr
from vc5.bgpd import policy, rib
from vc5.bgpd.capabilities import IPV4_UNICAST, IPV6_UNICAST
from vc5.common.wire import VipState


@dataclass(frozen=True)
class PeerStub:
    """The fields of vc5.config.Peer that policy reads."""
    address: object = ip.ip_address("10.0.0.1")
    as_number: int = 65001
    local_pref: int = 100
    med: int = 0
    communities: tuple = ()
    large_communities: tuple = ()
    next_hop_4: object = None
    next_hop_6: object = None
    multiprotocol: bool = False
    accept: tuple = ()
    reject: tuple = field(default=())


def n(text):
    return ip.ip_network(text)


def test_filter_accept_then_reject_then_export():
    any4 = (n("0.0.0.0/0"),)
    assert policy.exported(n("192.0.2.1/32"))
    assert not policy.exported(n("192.0.2.1/32"), reject=any4)
    assert policy.exported(n("192.0.2.1/32"), accept=(n("192.0.2.0/24"),), reject=any4)
    assert not policy.exported(n("198.51.100.1/32"), accept=(n("192.0.2.0/24"),), reject=any4)
    assert policy.exported(n("2001:db8::1/128"), reject=any4)          # families never cross-match


def test_offered_families():
    assert policy.offered_families(PeerStub()) == (IPV4_UNICAST,)
    assert policy.offered_families(PeerStub(address=ip.ip_address("fd00::1"))) == (IPV6_UNICAST,)
    assert policy.offered_families(PeerStub(multiprotocol=True)) == (IPV4_UNICAST, IPV6_UNICAST)


def facts(ibgp=False, families=(IPV4_UNICAST,), local="10.0.0.2"):
    return policy.SessionFacts(local_asn=65001, remote_asn=65001 if ibgp else 65000, four_octet=True,
                               families=families, local_address=ip.ip_address(local),
                               router_id=ip.ip_address("10.9.9.9"))


def test_ibgp_and_ebgp_attributes():
    peer = PeerStub(local_pref=250, med=7, communities=("65001:100",), large_communities=("65001:1:2",))
    i = policy.path_attributes(peer, facts(ibgp=True), 4)
    assert i.as_path == () and i.local_pref == 250 and i.med == 7
    assert i.next_hop == ip.ip_address("10.0.0.2")
    assert i.communities == ((65001, 100),) and i.large_communities == ((65001, 1, 2),)
    e = policy.path_attributes(peer, facts(), 4)
    assert e.as_path == (65001,) and e.local_pref is None


def test_next_hop_rules():
    nh4, nh6 = ip.ip_address("10.1.1.1"), ip.ip_address("fd00::9")
    assert policy.next_hop(PeerStub(next_hop_4=nh4), facts(), 4) == nh4
    f6 = facts(local="fd00::2")
    assert policy.next_hop(PeerStub(), f6, 4) == ip.ip_address("10.9.9.9")     # router ID fallback (vc5)
    assert policy.next_hop(PeerStub(), f6, 6) == ip.ip_address("fd00::2")
    assert policy.next_hop(PeerStub(), facts(), 6) is None                      # no IPv6 next hop known
    assert policy.next_hop(PeerStub(next_hop_6=nh6), facts(), 6) == nh6


def test_graceful_shutdown_adds_community():
    a = policy.path_attributes(PeerStub(communities=("65001:100",)), facts(), 4, graceful_shutdown=True)
    assert a.communities == ((65001, 100), attr.GRACEFUL_SHUTDOWN)


def test_adj_rib_out_families_and_filters():
    r = {n("10.255.0.1/32"), n("10.255.0.2/32"), n("fd00::1/128")}
    out = policy.adj_rib_out(r, PeerStub(reject=(n("10.255.0.2/32"),)), facts())
    assert set(out) == {n("10.255.0.1/32")}
    mp = policy.adj_rib_out(r, PeerStub(multiprotocol=True, next_hop_6=ip.ip_address("fd00::2")),
                            facts(families=(IPV4_UNICAST, IPV6_UNICAST)))
    assert set(mp) == r
    assert mp[n("fd00::1/128")].next_hop == ip.ip_address("fd00::2")


def test_rib_hold_down_and_learn():
    t0 = 1_000_000.0
    vips = [VipState("10.255.0.1", True, int(t0 * 1e6)), VipState("10.255.0.2", False, 0),
            VipState("fd00::1", True, int((t0 - 100) * 1e6))]
    got, wake = rib.compute(vips, t0 + 3, hold_down=5, learn_until=t0)
    assert got == {n("fd00::1/128")} and wake == t0 + 5
    got, wake = rib.compute(vips, t0 + 5, hold_down=5, learn_until=t0)
    assert n("10.255.0.1/32") not in got                     # "more than" 5 s
    got, wake = rib.compute(vips, t0 + 5.01, hold_down=5, learn_until=t0)
    assert got == {n("10.255.0.1/32"), n("fd00::1/128")} and wake is None
    got, wake = rib.compute(vips, t0 + 6, hold_down=5, learn_until=t0 + 60)
    assert got == set() and wake == t0 + 60                  # nothing before the learn delay


def test_rib_unknown_since_uses_first_seen():
    got, wake = rib.compute([VipState("10.255.0.1", True, 0)], 100.0, 5, 0, {"10.255.0.1": 90.0})
    assert got == {n("10.255.0.1/32")}
