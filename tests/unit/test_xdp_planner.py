"""The loader's pure parts: VLAN discovery (netinfo) and the Health1 -> data-plane planner."""

import ipaddress

import pytest

from vc5.common.wire import BackendState, ServiceState
from vc5.xdp_loader import netinfo, planner
from vc5.xdp_loader.netinfo import IFF_BROADCAST, IFF_LOOPBACK, IFF_UP, Interface, Neighbour

UPB = IFF_UP | IFF_BROADCAST


def itf(name, index, mac, *addrs, flags=UPB):
    return Interface(name, index, mac, flags, tuple(ipaddress.ip_interface(a) for a in addrs))


def nb(address, mac, state=netinfo.NUD_REACHABLE, ifindex=2):
    return Neighbour(ipaddress.ip_address(address), mac, ifindex, state)


LO = itf("lo", 1, "00:00:00:00:00:00", "127.0.0.1/8", flags=IFF_UP | IFF_LOOPBACK)
ETH0 = itf("eth0", 2, "02:00:00:00:00:01", "10.1.10.1/24", "fd00:10::1/64", "fe80::1/64")
ETH1 = itf("eth1", 3, "02:00:00:00:00:02", "10.1.20.1/24")
WIDE = itf("eth2", 4, "02:00:00:00:00:03", "10.1.0.1/16")
DOWN = itf("eth3", 5, "02:00:00:00:00:04", "10.1.30.1/24", flags=IFF_BROADCAST)


# --------------------------------------------------------------- netinfo

def test_best_interface_longest_prefix_wins():
    found, address = netinfo.best_interface("10.1.10.0/24", [WIDE, ETH0, LO])
    assert found.name == "eth0" and str(address) == "10.1.10.1/24"
    found, _ = netinfo.best_interface("10.1.99.0/24", [WIDE, ETH0])
    assert found.name == "eth2"


def test_best_interface_skips_down_loopback_and_link_local():
    assert netinfo.best_interface("10.1.30.0/24", [DOWN]) == (None, None)
    assert netinfo.best_interface("127.0.0.0/8", [LO]) == (None, None)
    assert netinfo.best_interface("fe80::/64", [ETH0]) == (None, None)


def test_resolve_vlans_with_gateway_host_bits():
    vlans = {10: ipaddress.ip_interface("10.1.10.254/24"), 20: ipaddress.ip_interface("10.1.20.0/24"),
             30: ipaddress.ip_interface("10.1.30.0/24")}
    gw_mac = {ipaddress.ip_address("10.1.10.254"): "02:aa:00:00:00:01"}
    infos = netinfo.resolve_vlans(vlans, [ETH0, ETH1, DOWN], gw_mac)
    by = {v.vlan: v for v in infos}
    assert by[10].ifname == "eth0" and str(by[10].lb_ip) == "10.1.10.1"
    assert by[10].lb_mac == "02:00:00:00:00:01"
    assert str(by[10].gateway) == "10.1.10.254" and by[10].gateway_mac == "02:aa:00:00:00:01"
    assert by[20].gateway is None and by[20].usable
    assert not by[30].usable and "10.1.30.0/24" in by[30].reason


def test_neighbour_states_and_view():
    view = netinfo.build_view([ETH0, ETH1], [nb("10.1.10.5", "02:00:00:00:05:05"),
                                             nb("10.1.10.6", "", netinfo.NUD_INCOMPLETE),
                                             nb("10.1.10.7", "02:00:00:00:07:07", netinfo.NUD_FAILED),
                                             nb("10.1.10.8", "02:00:00:00:08:08", netinfo.NUD_STALE)],
                              {10: ipaddress.ip_interface("10.1.10.0/24")}, {})
    assert view.mac_of("10.1.10.5") == "02:00:00:00:05:05"
    assert view.mac_of("10.1.10.6") == "" and view.mac_of("10.1.10.7") == ""
    assert view.mac_of("10.1.10.8") == "02:00:00:00:08:08"
    assert view.vlan_for("10.1.10.200").vlan == 10
    assert view.vlan_for("10.1.20.5") is None     # eth1 carries it but it is not a configured VLAN


def test_mac_learnt_on_the_vlan_interface_wins():
    view = netinfo.build_view([ETH0, ETH1], [nb("10.1.10.5", "02:00:00:00:00:aa", ifindex=3),
                                             nb("10.1.10.5", "02:00:00:00:00:bb", ifindex=2)],
                              {10: ipaddress.ip_interface("10.1.10.0/24")}, {})
    assert view.mac_of("10.1.10.5", 2) == "02:00:00:00:00:bb"
    assert view.mac_of("10.1.10.5", 3) == "02:00:00:00:00:aa"
    (p,) = planner.plan([svc(up("10.1.10.5"))], view)
    assert p.backends[0].mac == "02:00:00:00:00:bb"


def test_implicit_vlans_when_none_configured():
    view = netinfo.build_view([ETH0, ETH1, LO], [], {}, {}, implicit_from=("eth0", "eth1"))
    prefixes = sorted(str(v.prefix) for v in view.vlans)
    assert prefixes == ["10.1.10.0/24", "10.1.20.0/24", "fd00:10::/64"]
    assert view.vlan_for("10.1.20.9").ifname == "eth1"
    # with VLANs configured, nothing is implied
    view = netinfo.build_view([ETH0, ETH1], [], {10: ipaddress.ip_interface("10.1.10.0/24")}, {},
                              implicit_from=("eth0", "eth1"))
    assert [v.vlan for v in view.vlans] == [10]


# --------------------------------------------------------------- planner

def view_with(*neigh):
    return netinfo.build_view([ETH0, ETH1], list(neigh),
                              {10: ipaddress.ip_interface("10.1.10.0/24"),
                               20: ipaddress.ip_interface("10.1.20.0/24")},
                              {6: ipaddress.ip_interface("fd00:10::/64")})


def svc(*backends, port=80, proto="tcp", tunnel="none"):
    return ServiceState("192.0.2.1", port, proto, tunnel_type=tunnel, backends=tuple(backends))


def up(address, port=80, **kw):
    return BackendState(address, port, up=True, **kw)


NEIGH = (nb("10.1.10.11", "02:00:00:00:0b:01"), nb("10.1.10.12", "02:00:00:00:0b:02"),
         nb("10.1.20.13", "02:00:00:00:0b:03", ifindex=3), nb("fd00:10::14", "02:00:00:00:0b:04"))


def test_usable_backends_with_known_macs_enter_the_table():
    (p,) = planner.plan([svc(up("10.1.10.11"), up("10.1.10.12"), up("10.1.20.13"), up("fd00:10::14"))],
                        view_with(*NEIGH))
    assert p.key == "192.0.2.1:80:tcp" and p.reason == ""
    assert [b.address for b in p.table_members] == ["10.1.10.11", "10.1.10.12", "10.1.20.13", "fd00:10::14"]
    b = p.backends[2]
    assert (b.mac, b.lb_mac, b.lb_ip, b.ifname, b.vlan) == ("02:00:00:00:0b:03", "02:00:00:00:00:02",
                                                            "10.1.20.1", "eth1", 20)
    assert all(b.valid and b.reason == "" and not b.redirect for b in p.backends)


def test_unknown_mac_is_not_used_and_says_why():
    (p,) = planner.plan([svc(up("10.1.10.11"), up("10.1.10.99"))], view_with(*NEIGH))
    unknown = p.backends[1]
    assert not unknown.in_table and not unknown.valid
    assert unknown.reason.startswith("MAC unknown") and "eth0" in unknown.reason
    missing = planner.unresolved([svc(up("10.1.10.99"))], view_with(*NEIGH))
    assert [n.address for n in missing] == ["10.1.10.99"]
    n = planner.unresolved([svc(up("10.1.10.99"))], view_with())[0]
    assert (n.source, n.ifname) == ("10.1.10.1", "eth0")


def test_drained_and_down_backends_stay_valid_for_pinned_flows():
    (p,) = planner.plan([svc(up("10.1.10.11"), up("10.1.10.12", drained=True),
                             BackendState("10.1.20.13", 80, up=False, diagnostic="connect refused"),
                             up("fd00:10::14", disabled=True), up("10.1.10.11"))], view_with(*NEIGH))
    assert len(p.backends) == 4                       # the duplicate address is dropped
    drained, down, disabled = p.backends[1:]
    assert drained.valid and not drained.in_table and drained.reason == "drained by the operator"
    assert down.valid and not down.in_table and down.reason == "health check failing: connect refused"
    assert disabled.valid and not disabled.in_table and "disabled" in disabled.reason
    assert [b.address for b in p.table_members] == ["10.1.10.11"]


def test_remote_backend_tunnels_port_mismatch_and_empty_service():
    (p,) = planner.plan([svc(up("10.9.9.9"), up("10.1.10.11", port=8080))], view_with(*NEIGH))
    assert "no local VLAN" in p.backends[0].reason and "DSR needs equal ports" in p.backends[1].reason
    assert p.reason == "no usable backend" and not p.table_members
    (t,) = planner.plan([svc(up("10.1.10.11"), tunnel="bogus")], view_with(*NEIGH))
    assert "tunnel-type bogus unknown" in t.backends[0].reason and not t.backends[0].valid
    (e,) = planner.plan([svc()], view_with(*NEIGH))
    assert e.reason == "no backends"


def test_redirect_only_with_several_attached_interfaces():
    services = [svc(up("10.1.10.11"), up("10.1.20.13"))]
    (single,) = planner.plan(services, view_with(*NEIGH), redirect_ifindexes=(2,))
    assert not any(b.redirect for b in single.backends)
    (multi,) = planner.plan(services, view_with(*NEIGH), redirect_ifindexes=(2, 3), untagged=True)
    assert [(b.redirect, b.ifindex, b.vlan) for b in multi.backends] == [(True, 2, 0), (True, 3, 0)]


def test_plan_is_deterministic_and_first_key_wins():
    services = [svc(up("10.1.10.11")), svc(up("10.1.10.12"))]
    a = planner.plan(services, view_with(*NEIGH))
    assert a == planner.plan(services, view_with(*NEIGH))
    assert len(a) == 1 and a[0].backends[0].address == "10.1.10.11"


def test_gateway_without_mac_is_probed():
    view = netinfo.build_view([ETH0], [], {10: ipaddress.ip_interface("10.1.10.254/24")}, {})
    assert [(n.address, n.source) for n in planner.unresolved([], view)] == [("10.1.10.254", "10.1.10.1")]


@pytest.mark.parametrize("bad", ["not-an-ip", ""])
def test_bad_backend_address(bad):
    (p,) = planner.plan([svc(up(bad))], view_with(*NEIGH))
    assert "not an IP address" in p.backends[0].reason
