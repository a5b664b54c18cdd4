"""From the loader's plan to probe-path targets, and the index allocation (pure functions of
vc5.xdp_loader.nat; no kernel needed)."""

import ipaddress

from vc5.xdp_loader import nat
from vc5.xdp_loader.netinfo import NetView, VlanInfo
from vc5.xdp_loader.planner import PlannedBackend, PlannedService

VIEW = NetView(vlans=(
    VlanInfo(1, ipaddress.ip_network("10.0.1.0/24"), "eth0", 5, ipaddress.ip_address("10.0.1.2"),
             "02:00:00:00:00:02"),
    VlanInfo(1, ipaddress.ip_network("fd00:1::/64"), "eth0", 5, ipaddress.ip_address("fd00:1::2"),
             "02:00:00:00:00:02"),
))


def backend(address, **kw):
    base = dict(address=address, port=80, weight=1, mac="02:00:00:00:01:01", lb_mac="02:00:00:00:00:02",
                lb_ip="10.0.1.2" if "." in address else "fd00:1::2", vlan=1, ifname="eth0", ifindex=5,
                redirect_slot=1, valid=True, in_table=True)
    base.update(kw)
    return PlannedBackend(**base)


def service(vip, port, *backends):
    return PlannedService(f"{vip}:{port}:tcp", vip, port, "tcp", False, tuple(backends))


def test_one_target_per_vip_and_backend_shared_by_ports():
    plan = (service("192.0.2.1", 80, backend("10.0.1.10"), backend("10.0.1.11")),
            service("192.0.2.1", 443, backend("10.0.1.10", port=443)))
    targets, reasons = nat.targets_from_plan(plan, VIEW)
    assert set(targets) == {("192.0.2.1", "10.0.1.10"), ("192.0.2.1", "10.0.1.11")} and not reasons
    t = targets[("192.0.2.1", "10.0.1.10")]
    assert (t.saddr, t.mac, t.src_mac, t.ifindex) == ("10.0.1.2", "02:00:00:00:01:01", "02:00:00:00:00:02", 5)


def test_ipv6_vip_with_ipv4_backend_probes_from_our_ipv6_address_on_that_interface():
    targets, reasons = nat.targets_from_plan((service("2001:db8::1", 80, backend("10.0.1.10")),), VIEW)
    assert targets[("2001:db8::1", "10.0.1.10")].saddr == "fd00:1::2" and not reasons
    targets, reasons = nat.targets_from_plan((service("2001:db8::1", 80, backend("10.0.1.10")),), NetView())
    assert not targets and "no IPv6 address of ours on eth0" in reasons[("2001:db8::1", "10.0.1.10")]


def test_unforwardable_backend_has_no_target_and_a_reason():
    plan = (service("192.0.2.1", 80, backend("10.0.1.12", mac="", valid=False, reason="MAC unknown (...)")),)
    targets, reasons = nat.targets_from_plan(plan, VIEW)
    assert not targets and "MAC unknown" in reasons[("192.0.2.1", "10.0.1.12")]


def test_allocation_keeps_indices_and_reuses_the_lowest_free():
    a = nat.allocate({}, [("v", "b1"), ("v", "b2"), ("v", "b3")])
    assert sorted(a.values()) == [1, 2, 3]
    b = nat.allocate(a, [("v", "b1"), ("v", "b3"), ("v", "b4")])
    assert b[("v", "b1")] == a[("v", "b1")] and b[("v", "b3")] == a[("v", "b3")]
    assert b[("v", "b4")] == a[("v", "b2")]          # the freed index, lowest first
