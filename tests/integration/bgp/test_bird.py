"""vc5-bgpd (real process) against BIRD 2 in network namespaces."""

import signal

from tests.lib.wait import until

from .conftest import NET4

VIP = "10.255.0.1"


def yaml_for(ns, peers, extra=""):
    return f"""
        address: {ns.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          {extra}
          peers: [{', '.join(peers)}]
        """


def test_ebgp_active_advertise_and_withdraw_within_1s(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
    bgpd = bgpd_factory(lb, yaml_for(lb, [f"{NET4}.1"], "communities: [65001:100]\n          "
                                     "large_communities: ['65001:7:8']"))
    until(lambda: bird.state("lb") == "Established", 20, message="session established")
    health.set({VIP: True, "10.255.0.2": False})
    route = until(lambda: bird.route(f"{VIP}/32"), 10, message="VIP advertised")
    assert "BGP.as_path: 65001" in route
    assert f"BGP.next_hop: {lb.address4}" in route
    assert "(65001,100)" in route
    assert "(65001, 7, 8)" in route
    assert "10.255.0.2/32" not in bird.routes()
    import time
    health.set({VIP: False})
    t0 = time.monotonic()
    until(lambda: not bird.route(f"{VIP}/32"), 5, interval=0.02, message="VIP withdrawn")
    assert time.monotonic() - t0 < 1.0
    assert bgpd.proc.poll() is None
    bgpd.signal(signal.SIGTERM)
    assert bgpd.proc.wait(20) == 0
    until(lambda: "Administrative shutdown" in bird.cli("show", "protocols", "all", "lb")
          or "vc5-bgpd stopping" in bird.log(), 10, message="Cease seen by BIRD")
