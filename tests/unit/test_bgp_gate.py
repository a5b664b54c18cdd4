"""Fail-safe advertising (vc5.bgpd.gate): every case of "would this balancer forward the VIP?"."""

from vc5.bgpd import gate
from vc5.common import wire

P = gate.Params(mode=gate.REQUIRED, grace=5.0, starting_max=45.0)
VIP, VIP2 = "192.0.2.1", "192.0.2.2"
KEY, KEY2, KEY_B = f"{VIP}:80:tcp", f"{VIP2}:80:tcp", f"{VIP}:443:tcp"


def vips(*up, down=()):
    return tuple(wire.VipState(v, True, 1) for v in up) + tuple(wire.VipState(v, False, 1) for v in down)


def programmed(key, reason=""):
    vip, port, proto = key.rsplit(":", 2)
    return wire.ProgrammedService(key, vip, int(port), proto, reason)


def running(services=(KEY, KEY2), status="running: 2 services, 4 backends in use", active=True,
            interfaces=(wire.InterfaceStatus("eth0", 2, "native", 7, True),), reasons=None):
    reasons = reasons or {}
    services = tuple(programmed(k, reasons.get(k, "")) for k in services)
    return gate.LoaderView(status, active, interfaces, services)


def seen(view, now=0.0, mem=gate.Memory()):
    return gate.loader_seen(mem, view, now, P)


def ev(mem, now, up=(VIP, VIP2), health_services=()):
    return gate.evaluate(mem, vips(*up), health_services, now, P)


def test_running_loader_that_programmed_every_service_allows_every_vip_up():
    v = ev(seen(running()), 0)
    assert v.state == gate.READY and v.allowed == {VIP, VIP2} and v.held == ()
    assert v.memory.last_good == {VIP, VIP2}


def test_vips_down_in_healthd_are_never_allowed_nor_listed():
    v = gate.evaluate(seen(running()), vips(VIP, down=(VIP2,)), (), 0, P)
    assert v.allowed == {VIP} and v.held == ()


def test_gate_off_allows_what_healthd_says_without_a_loader():
    off = gate.Params(mode=gate.IGNORE)
    v = gate.evaluate(gate.Memory(), vips(VIP, down=(VIP2,)), (), 0, off)
    assert v.state == gate.IGNORED and v.allowed == {VIP} and v.held == ()


def test_no_loader_ever_seen_holds_everything_back():
    v = ev(gate.Memory(), 0)
    assert v.state == gate.DOWN and v.allowed == frozenset()
    assert dict(v.held) == {VIP: "org.vc5.XdpLoader1 is not on the bus", VIP2: "org.vc5.XdpLoader1 is not on "
                            "the bus"}


def test_loader_absent_less_than_grace_keeps_what_was_forwardable():
    mem = ev(seen(running()), 0).memory
    mem = gate.loader_gone(mem, 10.0, P)
    v = ev(mem, 14.9)
    assert v.state == gate.HOLDING and v.allowed == {VIP, VIP2}
    assert v.until == 15.0 and v.wake == 15.0


def test_loader_absent_more_than_grace_withdraws():
    mem = ev(seen(running()), 0).memory
    mem = gate.loader_gone(mem, 10.0, P)
    v = ev(mem, 15.0)
    assert v.state == gate.DOWN and v.allowed == frozenset() and len(v.held) == 2
    assert v.wake is None


def test_holding_keeps_only_vips_that_were_forwardable_and_are_still_up():
    mem = ev(seen(running(reasons={KEY2: "no usable backend"})), 0).memory
    assert mem.last_good == {VIP}
    mem = gate.loader_gone(mem, 1.0, P)
    v = ev(mem, 2.0)
    assert v.allowed == {VIP} and [vip for vip, _ in v.held] == [VIP2]
    v = ev(mem, 2.0, up=(VIP2,))                       # healthd still decides: VIP went down
    assert v.allowed == frozenset()


def test_restart_in_place_a_starting_successor_holds_up_to_the_bound_then_runs():
    mem = ev(seen(running()), 0).memory
    mem = gate.loader_gone(mem, 10.0, P)
    mem = gate.loader_seen(mem, gate.STARTING_UNPUBLISHED, 11.5, P)     # owns the name, compiling
    v = ev(mem, 30.0)                                  # well past grace: still holding
    assert v.state == gate.HOLDING and v.allowed == {VIP, VIP2} and v.until == 55.0
    mem = gate.loader_seen(v.memory, running(status="starting: waiting for org.vc5.Health1"), 31.0, P)
    assert ev(mem, 54.0).state == gate.HOLDING
    mem = gate.loader_seen(mem, running(), 32.0, P)
    v = ev(mem, 32.0)
    assert v.state == gate.READY and v.allowed == {VIP, VIP2}


def test_starting_longer_than_the_bound_withdraws():
    mem = ev(seen(running()), 0).memory
    mem = gate.loader_gone(mem, 10.0, P)
    mem = gate.loader_seen(mem, gate.STARTING_UNPUBLISHED, 11.0, P)
    assert ev(mem, 54.9).state == gate.HOLDING
    v = ev(mem, 55.0)
    assert v.state == gate.DOWN and v.allowed == frozenset()
    assert "starting" in dict(v.held)[VIP]


def test_the_bound_is_below_the_data_plane_watchdog():
    # docs/data-plane.md, Watchdogs: 60 s without a refresh, refreshed every 5 s
    assert gate.STARTING_MAX_S + 5.0 < 60.0


def test_a_successor_that_fails_to_start_withdraws_within_grace_and_a_retry_does_not_extend():
    mem = ev(seen(running()), 0).memory
    mem = gate.loader_gone(mem, 10.0, P)
    mem = gate.loader_seen(mem, gate.STARTING_UNPUBLISHED, 11.0, P)
    mem = gate.loader_gone(mem, 13.0, P)               # exited without running: failed start
    assert mem.failed_start
    assert ev(mem, 17.9).state == gate.HOLDING         # within 5 s of the failed start's exit
    mem = gate.loader_seen(mem, gate.STARTING_UNPUBLISHED, 15.5, P)     # Restart= tries again
    assert ev(mem, 17.9).state == gate.HOLDING
    v = ev(mem, 18.0)                                  # ... and does not extend the hold
    assert v.state == gate.DOWN and "failed to start" in v.detail
    # and when one finally runs, the VIPs come back
    v = ev(gate.loader_seen(v.memory, running(), 40.0, P), 40.0)
    assert v.state == gate.READY and v.allowed == {VIP, VIP2}


def test_running_loader_that_says_starting_again_is_held_up_to_the_bound():
    mem = ev(seen(running()), 0).memory
    mem = gate.loader_seen(mem, running(status="starting: waiting for org.vc5.Health1"), 5.0, P)
    assert ev(mem, 49.0).state == gate.HOLDING
    assert ev(mem, 50.0).state == gate.DOWN


def test_an_interface_without_the_program_holds_every_vip():
    detached = (wire.InterfaceStatus("eth0", 2, "native", 7, True),
                wire.InterfaceStatus("eth1", 3, "", 0, False, "no such interface"))
    v = ev(seen(running(interfaces=detached)), 0)
    assert v.state == gate.READY and v.allowed == frozenset()
    assert dict(v.held)[VIP] == "interface eth1 has no vc5 program attached (no such interface)"


def test_no_interfaces_reported_holds_every_vip():
    v = ev(seen(running(interfaces=())), 0)
    assert v.allowed == frozenset() and dict(v.held)[VIP] == "the loader reports no interface"


def test_balancing_off_holds_every_vip():
    v = ev(seen(running(active=False)), 0)
    assert v.allowed == frozenset() and "SetActive(false)" in dict(v.held)[VIP]


def test_a_service_not_programmed_holds_its_vip_only():
    v = ev(seen(running(reasons={KEY: "no usable backend"})), 0)
    assert v.allowed == {VIP2} and dict(v.held) == {VIP: f"service {KEY}: no usable backend"}


def test_a_service_healthd_has_and_the_loader_does_not_holds_the_vip():
    health = (wire.ServiceState(VIP, 80, "tcp"), wire.ServiceState(VIP, 443, "tcp"),
              wire.ServiceState(VIP2, 80, "tcp"))
    v = ev(seen(running()), 0, health_services=health)
    assert v.allowed == {VIP2} and dict(v.held) == {VIP: f"service {KEY_B} is not programmed yet"}
    v = ev(seen(running(services=(KEY, KEY_B, KEY2))), 0, health_services=health)
    assert v.allowed == {VIP, VIP2}


def test_a_vip_the_loader_knows_nothing_of_is_held():
    v = ev(seen(running(services=(KEY,))), 0)
    assert v.allowed == {VIP} and dict(v.held) == {VIP2: "the data plane has no service for this VIP"}


def test_a_loader_seen_only_starting_then_gone_holds_nothing():
    mem = seen(gate.STARTING_UNPUBLISHED, 0.0)
    v = ev(mem, 0.5)
    assert v.state == gate.DOWN and v.allowed == frozenset()
    mem = gate.loader_gone(v.memory, 1.0, P)
    assert ev(mem, 1.5).state == gate.DOWN


def test_status_words_that_mean_starting():
    assert gate.LoaderView("starting: compiling").starting
    assert gate.LoaderView("waiting for org.vc5.Health1; forwarding with the services the maps hold").starting
    assert not gate.LoaderView("running: 2 services, 4 backends in use").starting
    assert not gate.LoaderView("running: org.vc5.Health1 is gone; keeping the programmed services").starting


def test_from_properties_reads_the_typed_loader_properties():
    props = {"Status": "running: 1", "Active": True, "Interfaces": (wire.InterfaceStatus("eth0"),),
             "Services": (programmed(KEY),), "Mode": "native"}
    view = gate.LoaderView.from_properties(props)
    assert view.status == "running: 1" and view.active and view.services[0].key == KEY


def test_a_learning_loader_holds_every_vip_until_it_has_listened():
    r = running()
    learning = gate.LoaderView(r.status, r.active, r.interfaces, r.services, learning=True)
    v = ev(seen(learning), 0)
    assert v.state == gate.READY and v.allowed == frozenset()
    assert "learning" in dict(v.held)[VIP] and "learning" in dict(v.held)[VIP2]
    v = ev(seen(running(), 1.0, v.memory), 1.0)
    assert v.allowed == {VIP, VIP2}


def test_from_properties_reads_learning_and_an_older_loader_is_not_learning():
    props = {"Status": "running: 1", "Active": True, "Learning": True}
    assert gate.LoaderView.from_properties(props).learning
    assert not gate.LoaderView.from_properties({"Status": "running: 1"}).learning
