"""Fail-safe advertising and maintenance, seen in BIRD's table (docs/bgp.md).

vc5-bgpd (real process, --dataplane required) follows a stand-in org.vc5.XdpLoader1
on the private bus: a loader restart (a 2 s absence) never withdraws; a loader that
is gone for good withdraws within 5 s; maintenance sends GRACEFUL_SHUTDOWN, then
withdraws, and stays on across a restart of vc5-bgpd until turned off.
"""

import time

import pytest

from tests.lib.wait import until

from .conftest import NET4, bgp_call, bgp_property
from .loader_stand_in import LoaderStandIn

VIP = "10.255.0.1"
ROUTE = f"{VIP}/32"


@pytest.fixture
def loader(private_bus):
    stand_in = LoaderStandIn()
    yield stand_in
    stand_in.close()


def yaml_for(ns, extra=""):
    return f"""
        address: {ns.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          {extra}
          peers: [{NET4}.1]
        """


def start(lab, bird_factory, bgpd_factory, extra="", args=()):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
    bgpd = bgpd_factory(lb, yaml_for(lb, extra), args=["--dataplane", "required", "--state-dir",
                                                       f"{lab.tmp}/state", *args])
    until(lambda: bird.state("lb") == "Established", 20, message="session established")
    return lb, bird, bgpd


def test_vip_waits_for_the_loader_survives_a_restart_and_goes_with_it(lab, bird_factory, bgpd_factory,
                                                                      health, loader):
    lb, bird, bgpd = start(lab, bird_factory, bgpd_factory)
    health.set({VIP: True})
    time.sleep(1.5)
    assert not bird.route(ROUTE), "advertised with no data plane"
    loader.run(VIP)
    loader.own()
    until(lambda: bird.route(ROUTE), 10, message="VIP advertised once the loader programmed it")

    # in-place restart: the name is gone for 2 s (< the 5 s grace), the successor runs
    loader.release()
    gone = time.monotonic()
    while time.monotonic() - gone < 2.0:
        assert bird.route(ROUTE), "withdrawn during a 2 s loader restart"
        time.sleep(0.1)
    loader.own()
    until(lambda: bgp_property(health, "DataPlane")[0] == "ready", 5)
    time.sleep(6.0)                                  # past the grace of the first absence
    assert bird.route(ROUTE), "withdrawn after the loader came back"

    # the loader goes for good: withdrawn within 5 s (+ BIRD's processing)
    loader.release()
    t0 = time.monotonic()
    until(lambda: not bird.route(ROUTE), 10, interval=0.1, message="VIP withdrawn after the loader left")
    took = time.monotonic() - t0
    assert 4.0 <= took < 6.0, f"withdrawn after {took:.1f} s (grace 5 s)"
    assert bgpd.proc.poll() is None


def test_a_service_the_loader_refused_is_not_advertised(lab, bird_factory, bgpd_factory, health, loader):
    lb, bird, bgpd = start(lab, bird_factory, bgpd_factory)
    health.set({VIP: True})
    loader.run(VIP)
    loader.own()
    until(lambda: bird.route(ROUTE), 10, message="VIP advertised")
    from .loader_stand_in import programmed
    loader.publish(Services=(programmed(VIP, reason="no usable backend"),))
    until(lambda: not bird.route(ROUTE), 5, interval=0.05, message="withdrawn when not programmed")
    loader.publish(Services=(programmed(VIP),))
    until(lambda: bird.route(ROUTE), 5, message="advertised again")


def test_maintenance_graceful_shutdown_withdraw_and_persist(lab, bird_factory, bgpd_factory, health, loader):
    lb, bird, bgpd = start(lab, bird_factory, bgpd_factory, extra="graceful_shutdown: 2")
    health.set({VIP: True})
    loader.run(VIP)
    loader.own()
    until(lambda: bird.route(ROUTE), 10, message="VIP advertised")
    assert "(65535,0)" not in bird.route(ROUTE)
    bgp_call(health, "SetMaintenance", "b", [True])
    until(lambda: "(65535,0)" in bird.route(ROUTE), 5, interval=0.05, message="GRACEFUL_SHUTDOWN community")
    assert bgp_property(health, "Maintenance") == "draining"
    until(lambda: not bird.route(ROUTE), 6, interval=0.05, message="withdrawn after graceful_shutdown")
    assert bgp_property(health, "Maintenance") == "on"
    assert bird.state("lb") == "Established"        # sessions stay up

    # a restart of vc5-bgpd keeps it out
    assert bgpd.stop() == 0
    bgpd2 = bgpd_factory(lb, yaml_for(lb, "graceful_shutdown: 2"),
                         args=["--dataplane", "required", "--state-dir", f"{lab.tmp}/state"])
    until(lambda: bird.state("lb") == "Established", 20, message="session re-established")
    until(lambda: bgp_property(health, "Maintenance") == "on", 10)
    time.sleep(2.0)
    assert not bird.route(ROUTE), "advertised after a restart in maintenance"

    bgp_call(health, "SetMaintenance", "b", [False])
    route = until(lambda: bird.route(ROUTE), 5, message="advertised again after maintenance off")
    assert "(65535,0)" not in route
    assert bgpd2.proc.poll() is None
