"""vc5's main job, end to end: client -> router (ECMP) -> balancers (XDP) -> backends -> client.

Everything is real: BIRD on the router learns the VIP from both balancers'
bgpd, XDP on each balancer forwards to backends chosen by healthd's checks of
real HTTP servers, and replies go straight from the backends to the client.
"""

import collections

from tests.lab.topology import VIP4
from tests.lib.wait import until


def new_connections(lab, n):
    """n new HTTP connections from the client: Counter of which backend answered."""
    out = lab.client.ns.run(f"for i in $(seq {n}); do curl -s -m 2 http://{VIP4}/ || echo FAIL; done",
                            check=False, timeout=4 * n + 10).stdout.split()
    return collections.Counter(out)


def rx_bytes(lab, host):
    return lab.link_stats(host)["rx_bytes"]


def test_router_installs_every_balancer_as_a_next_hop(lab):
    hops = lab.stack.wait_advertised(timeout=30)
    assert hops == {lb.ip for lb in lab.balancers}
    fib = lab.router.ns.run(f"ip route show {VIP4}").stdout
    assert fib.count("nexthop") == len(lab.balancers), fib


def test_new_connections_spread_over_every_backend(lab):
    hits = new_connections(lab, 60)
    assert "FAIL" not in hits, hits
    assert set(hits) == {f"be{i}" for i in range(1, len(lab.backends) + 1)}, hits


def test_replies_go_straight_from_backend_to_client(lab):
    before = [rx_bytes(lab, lb) for lb in lab.balancers]
    size = 2_000_000
    got = lab.client.ns.run(f"curl -s -m 10 -o /dev/null -w '%{{size_download}}' http://{VIP4}/big/{size}",
                            check=False).stdout
    assert got == str(size), got
    # Balancers see the request, never the reply (DSR): far less than the reply crossed them.
    grown = sum(rx_bytes(lab, lb) - b for lb, b in zip(lab.balancers, before))
    assert grown < 200_000, grown


def be2_in_http_table(lab, balancer):
    """Whether balancer's data plane has be2 in the Maglev table of an HTTP (port 80) service."""
    be2 = lab.backends[1].ip
    return any(be.address == be2 and be.in_table for svc in lab.stack.prop(balancer, "xdp-loader", "Services")
               if svc.port == 80 for be in svc.backends)


def test_failing_backend_gets_no_new_connections_then_recovers(lab):
    lab.set_backend_failing(2, True)
    try:
        # Each balancer's healthd decides on its own: wait until both have taken be2 out of
        # their HTTP Maglev tables (a round of connections may miss the slower one by chance).
        until(lambda: all(not be2_in_http_table(lab, b) for b in range(1, len(lab.balancers) + 1)),
              timeout=20, interval=0.2, message="be2 is still in a Maglev table after failing its checks")
        hits = new_connections(lab, 30)
        assert "be2" not in hits and "FAIL" not in hits, hits
    finally:
        lab.set_backend_failing(2, False)
    until(lambda: "be2" in new_connections(lab, 20), timeout=30, interval=0.5,
          message="be2 did not come back after passing its checks again")


def test_vip_withdrawn_when_need_is_violated_and_readvertised(lab):
    for i in range(1, len(lab.backends) + 1):
        lab.set_backend_failing(i, True)
    try:
        until(lambda: VIP4 not in lab.birdc("show", "route", f"{VIP4}/32"), timeout=20, interval=0.1,
              message="the router still has the VIP with every backend failing")
    finally:
        for i in range(1, len(lab.backends) + 1):
            lab.set_backend_failing(i, False)
    lab.stack.wait_advertised(timeout=60)
    hits = new_connections(lab, 6)
    assert "FAIL" not in hits, hits
