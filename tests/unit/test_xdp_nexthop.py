"""The planner's next hop and tunnels (docs/data-plane.md, "Next hop and tunnels"): pure, no root.

vc5-behaviour section 1.4 "Backend location" and section 4 items 31, 32: a backend on a local
prefix gets its own MAC; any other goes to the gateway named by a prefix's host bits, only
through a tunnel; tunnel-type none to it is refused with a reason.
"""

import ipaddress

from vc5.common.wire import BackendState, ServiceState
from vc5.xdp_loader import netinfo, planner
from vc5.xdp_loader.netinfo import IFF_BROADCAST, IFF_UP, Interface, Neighbour

UPB = IFF_UP | IFF_BROADCAST
GW_MAC = "02:00:00:00:fe:01"
GW6_MAC = "02:00:00:00:fe:06"
BE_MAC = "02:00:00:00:0b:01"


def itf(name, index, mac, *addrs, mtu=1500):
    return Interface(name, index, mac, UPB, tuple(ipaddress.ip_interface(a) for a in addrs), mtu=mtu)


def nb(address, mac, ifindex=2, state=netinfo.NUD_REACHABLE):
    return Neighbour(ipaddress.ip_address(address), mac, ifindex, state)


ETH0 = itf("eth0", 2, "02:00:00:00:00:01", "10.1.10.1/24", "fd00:10::1/64", mtu=1450)
ETH1 = itf("eth1", 3, "02:00:00:00:00:02", "10.1.20.1/24", "fd00:20::1/64", mtu=9000)
V4 = {10: ipaddress.ip_interface("10.1.10.254/24"), 20: ipaddress.ip_interface("10.1.20.0/24")}
V6 = {10: ipaddress.ip_interface("fd00:10::fffe/64")}
NEIGH = [nb("10.1.10.254", GW_MAC), nb("fd00:10::fffe", GW6_MAC), nb("10.1.10.11", BE_MAC),
         nb("10.1.20.13", "02:00:00:00:0b:03", ifindex=3)]


def view(neigh=NEIGH, v4=V4, v6=V6, interfaces=(ETH0, ETH1), implicit=()):
    return netinfo.build_view(list(interfaces), list(neigh), v4, v6, implicit)


def svc(*backends, tunnel="none", port=0, no_csum=False, vip="192.0.2.1"):
    return ServiceState(vip, 80, "tcp", tunnel_type=tunnel, tunnel_port=port, tunnel_no_checksum=no_csum,
                        backends=tuple(backends))


def up(address):
    return BackendState(address, 80, up=True)


def one(service, v=None, **kw):
    (p,) = planner.plan([service], v or view(), **kw)
    return p.backends[0]


def test_local_backend_gets_its_own_mac_and_the_egress_mtu():
    b = one(svc(up("10.1.10.11")))
    assert (b.mac, b.gateway, b.in_table, b.method, b.mtu, b.lb_ip) == (BE_MAC, "", True, "none", 1450,
                                                                        "10.1.10.1")


def test_routed_backend_needs_a_tunnel_and_says_so():
    b = one(svc(up("10.9.9.9")))
    assert not b.valid and not b.in_table
    assert "tunnel-type none" in b.reason and "no local VLAN prefix" in b.reason
    spec = planner.to_specs(planner.plan([svc(up("10.9.9.9"))], view())[0])
    assert spec.backends[0].valid is False and spec.backends[0].method == "none"


def test_routed_backend_goes_to_the_gateway_mac_in_the_tunnel():
    b = one(svc(up("10.9.9.9"), tunnel="gue", port=6080, no_csum=True))
    assert b.in_table and b.valid and b.reason == ""
    got = (b.mac, b.gateway, b.ifname, b.egress_vlan, b.lb_ip, b.mtu)
    assert got == (GW_MAC, "10.1.10.254", "eth0", 10, "10.1.10.1", 1450)
    planned = planner.plan([svc(up("10.9.9.9"), tunnel="gue", port=6080, no_csum=True)], view())
    (spec,) = planner.to_specs(planned[0]).backends
    assert (spec.method, spec.tunnel_port, spec.no_checksum, spec.src_address, spec.mac, spec.mtu) == (
        "gue", 6080, True, "10.1.10.1", GW_MAC, 1450)


def test_local_backend_in_a_tunnel_keeps_its_own_mac():
    (spec,) = planner.to_specs(planner.plan([svc(up("10.1.20.13"), tunnel="ipip")], view())[0]).backends
    assert (spec.method, spec.mac, spec.src_address, spec.mtu) == ("ipip", "02:00:00:00:0b:03", "10.1.20.1",
                                                                   9000)


def test_ipv6_backend_uses_the_vlans6_gateway_and_our_ipv6_address():
    b = one(svc(up("fd99::5"), tunnel="ipip"))
    assert (b.mac, b.gateway, b.lb_ip, b.in_table) == (GW6_MAC, "fd00:10::fffe", "fd00:10::1", True)
    # an IPv4 VIP to it: outer family = the backend's (4in6)
    b = one(svc(up("fd99::5"), tunnel="gre", vip="192.0.2.9"))
    assert b.in_table and b.lb_ip == "fd00:10::1"


def test_gateway_mac_unknown_is_a_reason_and_the_gateway_is_probed():
    v = view(neigh=[])
    b = one(svc(up("10.9.9.9"), tunnel="gre"), v)
    assert not b.valid and b.reason == "gateway 10.1.10.254 MAC unknown (no neighbour entry on eth0)"
    probes = [(n.address, n.source, n.ifname) for n in planner.unresolved([], v)]
    assert ("10.1.10.254", "10.1.10.1", "eth0") in probes


def test_no_gateway_of_the_family_no_tunnel_source():
    b = one(svc(up("fd99::5"), tunnel="gre"), view(v6={}))
    assert not b.valid and "no vlans6 prefix names an IPv6 gateway" in b.reason
    assert "no IPv6 address of ours" in b.reason
    b = one(svc(up("10.9.9.9"), tunnel="gre"), view(v4={20: V4[20]}))
    assert "no vlans prefix names an IPv4 gateway" in b.reason


def test_implicit_untagged_network_is_local_and_has_no_gateway():
    v = view(v4={}, v6={}, implicit=("eth0",))
    assert one(svc(up("10.1.10.11")), v).in_table
    b = one(svc(up("10.9.9.9"), tunnel="ipip"), v)
    assert not b.valid and "names an IPv4 gateway" in b.reason


def test_fou_and_gue_need_a_port():
    b = one(svc(up("10.9.9.9"), tunnel="fou"))
    assert not b.valid and b.reason == "tunnel-type fou needs a tunnel-port"


def test_first_vlan_with_a_known_gateway_mac_wins():
    v4 = {10: ipaddress.ip_interface("10.1.10.254/24"), 20: ipaddress.ip_interface("10.1.20.254/24")}
    v = view(neigh=[nb("10.1.20.254", "02:00:00:00:fe:20", ifindex=3)], v4=v4)
    b = one(svc(up("10.9.9.9"), tunnel="gre"), v)
    assert (b.gateway, b.mac, b.ifname, b.mtu) == ("10.1.20.254", "02:00:00:00:fe:20", "eth1", 9000)
    v = view(neigh=NEIGH + [nb("10.1.20.254", "02:00:00:00:fe:20", ifindex=3)], v4=v4)
    assert one(svc(up("10.9.9.9"), tunnel="gre"), v).gateway == "10.1.10.254"


def test_gateway_mac_change_changes_the_spec():
    s = svc(up("10.9.9.9"), tunnel="gre")
    a = planner.to_specs(planner.plan([s], view())[0])
    b = planner.to_specs(planner.plan([s], view(neigh=[nb("10.1.10.254", "02:00:00:00:fe:99")]))[0])
    assert a != b and b.backends[0].mac == "02:00:00:00:fe:99"


def test_mtu_change_changes_the_spec():
    s = svc(up("10.9.9.9"), tunnel="gre")
    small = itf("eth0", 2, "02:00:00:00:00:01", "10.1.10.1/24", "fd00:10::1/64", mtu=1400)
    a = planner.to_specs(planner.plan([s], view())[0]).backends[0]
    b = planner.to_specs(planner.plan([s], view(interfaces=(small, ETH1)))[0]).backends[0]
    assert (a.mtu, b.mtu) == (1450, 1400)


def test_redirect_slots_per_family_and_vlan():
    # VLAN 10 is eth0 for IPv4 but eth1 for IPv6: one DEVMAP, two slots
    v = view(v6={10: ipaddress.ip_interface("fd00:20::fffe/64")})
    slots = planner.redirect_slot_map(v)
    assert slots[(4, 10)] == 10 and slots[(6, 10)] == 4095 and slots[(4, 20)] == 20
    v = view()          # same NIC for both families: one slot
    assert planner.redirect_slot_map(v)[(6, 10)] == 10


def test_published_reason_for_refused_backend():
    (p,) = planner.plan([svc(up("10.9.9.9"), up("10.1.10.11"))], view())
    wire_backends = p.to_wire().backends
    assert wire_backends[0].reason.startswith("10.9.9.9 is on no local VLAN prefix")
    assert not wire_backends[0].in_table and wire_backends[1].in_table


def test_healthd_names_the_tunnel_when_a_probe_fails():
    from types import SimpleNamespace

    from vc5.healthd import probe_path as pp
    gue = SimpleNamespace(tunnel_type="gue", tunnel_port=6080)
    assert pp.tunnel_hint(gue, "10.2.0.5") == "tunnel gue:6080 not terminated on 10.2.0.5?"
    assert pp.tunnel_hint(SimpleNamespace(tunnel_type="ipip", tunnel_port=0), "fd00::5") == \
        "tunnel ipip not terminated on fd00::5?"
    assert pp.tunnel_hint(SimpleNamespace(tunnel_type="none", tunnel_port=0), "10.2.0.5") is None
