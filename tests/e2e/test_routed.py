"""Layer-3 DSR end to end: real HTTP from the client to backends behind a router, through each tunnel.

The routed lab (conftest.routed_lab; tests/lab/topology.py, `routed=2`): rb1 and
rb2 sit on another subnet (10.220.0.0/24, fd00:220::/64) behind the router; the
balancers name the router as their gateway with host bits (`1: 10.210.2.1/24`)
and reach the routed backends only by tunnel. The backends have no tunnel
modules (this kernel has none): `vc5-decap` on their NIC strips the outer
header, the kernel delivers the client's packet to the VIP on lo, and the
reply goes from the VIP straight to the client through the router (DSR).

Every (tunnel type, VIP family, backend family) has a VIP of its own
(topology.routed_vip), so each case knows which encapsulation carried it, and
checks that on the backends' decapsulation counters. Waits for the loader's
planner to program tunnels and routed next hops (issue 13, "Next hop").
"""

import collections

import pytest

from tests.lab.topology import ROUTED_VIPS, TUNNELS, routed_vip
from tests.lib.wait import until

MIXES = [(t, inner, outer) for t in TUNNELS for inner in (4, 6) for outer in (4, 6)]


def url(vip, path="/"):
    return f"http://[{vip}]{path}" if ":" in vip else f"http://{vip}{path}"


def new_connections(lab, vip, n):
    """n new HTTP connections from the client to `vip`: Counter of which backend answered."""
    out = lab.client.ns.run(f"for i in $(seq {n}); do curl -s -m 2 {url(vip)} || echo FAIL; done",
                            check=False, timeout=3 * n + 10).stdout.split()
    return collections.Counter(out)


def advertised(lab, vip):
    plen = 128 if ":" in vip else 32
    return vip in lab.birdc("show", "route", f"{vip}/{plen}")


def decap_counters(lab):
    """{counter: sum over the routed backends} of vc5-decap's counters."""
    total = collections.Counter()
    for i in range(1, len(lab.routed) + 1):
        total.update(lab.decap_status(i)["counters"])
    return total


def balancers_rx(lab):
    return sum(lab.link_stats(lb)["rx_bytes"] for lb in lab.balancers)


@pytest.fixture(scope="module")
def routed_up(routed_lab):
    """Every routed VIP learnt by the router (its backends passed their encapsulated checks)."""
    missing = []

    def every_vip():
        missing[:] = [v for v in ROUTED_VIPS if not advertised(routed_lab, v)]
        return not missing
    try:
        until(every_vip, timeout=60, interval=0.5)
    except AssertionError:
        reasons = {b.address: b.reason for s in routed_lab.stack.prop(1, "xdp-loader", "Services") or ()
                   for b in s.backends if b.reason}
        raise AssertionError(f"the router did not learn the routed VIPs {missing}; "
                             f"lb1's loader says: {reasons}") from None
    return routed_lab


def test_decap_attached_on_every_routed_backend(routed_lab):
    """Works today: the topology and vc5-decap on the backends (no balancer involved)."""
    for i in range(1, len(routed_lab.routed) + 1):
        st = routed_lab.decap_status(i)
        assert st["attached"] and not st["problems"], st
        assert set(st["types"]) == set(TUNNELS), st
        assert st["fou_port"] == TUNNELS["fou"][0] and st["gue_port"] == TUNNELS["gue"][0], st
        assert set(ROUTED_VIPS) <= {v.split("/")[0] for v in st["vips"]}, st


def test_routed_backends_reach_the_client_directly(routed_lab):
    """Works today: the DSR return path (a routed backend -> router -> client) exists; here the
    routed backend talks to the client from its own address, the VIP's path is tested below."""
    for rb in routed_lab.routed:
        rb.ns.run(f"ping -c1 -W2 {routed_lab.client.ip}")
        rb.ns.run(f"ping -6 -c1 -W2 {routed_lab.client.ip6}")


@pytest.mark.parametrize("tunnel,inner,outer", MIXES,
                         ids=[f"{t}-{i}in{o}" for t, i, o in MIXES])
def test_http_through_tunnel(routed_up, tunnel, inner, outer):
    lab = routed_up
    vip = routed_vip(tunnel, inner, outer)
    before = decap_counters(lab)
    hits = new_connections(lab, vip, 16)
    assert "FAIL" not in hits, (vip, hits)
    assert set(hits) == {"rb1", "rb2"}, (vip, hits)
    grown = decap_counters(lab) - before
    # The backends took the outer header off: this tunnel type, outer family = the backends'.
    assert grown[f"decap_{tunnel}"] >= 16 * 3, (vip, grown)     # at least SYN, ACK, request per connection
    assert grown[f"decap_outer_ipv{outer}"] >= 16 * 3, (vip, grown)
    assert grown["rejected_malformed"] == grown["rejected_checksum"] == 0, (vip, grown)


@pytest.mark.parametrize("tunnel,inner,outer", MIXES,
                         ids=[f"{t}-{i}in{o}" for t, i, o in MIXES])
def test_replies_bypass_the_balancer(routed_up, tunnel, inner, outer):
    """A 1 MB download completes (the client's full-size segments fit the tunnel after the VIP's
    Fragmentation Needed / Packet Too Big, if any) and the reply never crosses a balancer."""
    lab = routed_up
    vip = routed_vip(tunnel, inner, outer)
    size = 1_000_000
    before = balancers_rx(lab)
    got = lab.client.ns.run(f"curl -s -m 20 -o /dev/null -w '%{{size_download}}' {url(vip, f'/big/{size}')}",
                            check=False, timeout=30).stdout
    assert got == str(size), (vip, got)
    grown = balancers_rx(lab) - before
    assert grown < 200_000, (vip, grown)


def routed_backend_state(lab, balancer, vip, address):
    for svc in lab.stack.prop(balancer, "healthd", "Services") or ():
        if svc.vip == vip and svc.port == 80:
            for be in svc.backends:
                if be.address == address:
                    return be
    return None


def test_detached_decap_takes_the_backend_down_with_the_tunnel_diagnostic(routed_up):
    """The probe goes through the same tunnel as traffic: a backend that no longer decapsulates
    fails its check, and healthd says why (issue 13 item 4)."""
    lab = routed_up
    vip = routed_vip("gue", 4, 4)
    rb2 = lab.routed[1]
    lab.decap(2, "detach")
    try:
        def down_everywhere():
            states = [routed_backend_state(lab, b, vip, rb2.ip) for b in range(1, len(lab.balancers) + 1)]
            return states if all(s is not None and not s.up for s in states) else None
        states = until(down_everywhere, timeout=30, interval=0.3,
                       message=f"rb2 ({rb2.ip}) still up for {vip} with its vc5-decap detached")
        for s in states:
            assert "tunnel" in s.diagnostic and rb2.ip in s.diagnostic, s
        hits = new_connections(lab, vip, 12)
        assert hits == {"rb1": 12}, hits
    finally:
        lab.decap(2, "attach")
    until(lambda: all((s := routed_backend_state(lab, b, vip, rb2.ip)) is not None and s.up
                      for b in range(1, len(lab.balancers) + 1)),
          timeout=30, interval=0.3, message="rb2 did not come back with vc5-decap attached again")
    until(lambda: "rb2" in new_connections(lab, vip, 12), timeout=20, interval=0.5,
          message="rb2 gets no new connections after coming back")
